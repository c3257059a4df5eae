"""What a file's columns look like they hold, for the two places that must say it to a user:
the ``--map`` that ``winnow inspect`` suggests, and the refusal to auto-detect a layout that
would leave data unread.

Why one module: both answer "which column is the prompt, which the response" from names and
value types, and they must agree (the refusal quotes the map inspect would suggest).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["column_kind", "suggest_map", "unread_columns", "wrapped_records"]

# lower-cased words of a column name (split at anything but letters and digits) that say what it holds
PROMPT_WORDS = ("prompt", "instruction", "question", "query", "input", "text", "task", "problem", "q",
                "inst", "instructions", "questions", "prompts", "context", "source", "human", "user")
RESPONSE_WORDS = ("output", "response", "answer", "completion", "target", "reply", "resp", "ans", "a",
                  "outputs", "responses", "answers", "completions", "solution", "assistant", "gpt")
CHOSEN_WORDS = ("chosen", "good", "preferred", "accepted", "better", "winner")
REJECTED_WORDS = ("rejected", "bad", "dispreferred", "worse", "loser")
TURN_KEYS = ("role", "from")
_WORD = re.compile(r"[a-z0-9]+")


def _words(name: str) -> list[str]:
    return _WORD.findall(name.lower())


def column_kind(name: str) -> str | None:
    """'chosen', 'rejected', 'response' or 'prompt' when a column's name says so, else None."""
    words = _words(name)
    for kind, vocab in (("chosen", CHOSEN_WORDS), ("rejected", REJECTED_WORDS), ("response", RESPONSE_WORDS),
                        ("prompt", PROMPT_WORDS)):
        if any(w in vocab for w in words):
            return kind
    return None


def _pick(columns: Sequence[str], kinds: tuple[str, ...], vocab: tuple[str, ...]) -> str | None:
    """The column whose name is of one of ``kinds``, preferring the earliest word of ``vocab``."""
    found = [c for c in columns if column_kind(c) in kinds]
    rank = {w: i for i, w in enumerate(vocab)}
    return min(found, key=lambda c: min((rank.get(w, len(vocab)) for w in _words(c)), default=len(vocab)),
               default=None)


def _is_turns(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and any(
        k in value[0] for k in TURN_KEYS)


def _nested_pair(row: Mapping[str, Any]) -> tuple[str | None, str] | None:
    """(input path, output path) inside a nested column, e.g. Self-Instruct's
    ``instances.0.input`` / ``instances.0.output``; None when no nested value has a response key."""
    for column, value in row.items():
        inner, prefix = value, str(column)
        if isinstance(value, list) and value and isinstance(value[0], dict):
            inner, prefix = value[0], f"{column}.0"
        if not isinstance(inner, dict) or _is_turns(value):
            continue
        keys = [str(k) for k in inner if isinstance(inner[k], str)]
        output = _pick(keys, ("response",), RESPONSE_WORDS)
        if output is None:
            continue
        given = _pick([k for k in keys if k != output], ("prompt",), PROMPT_WORDS)
        return (f"{prefix}.{given}" if given else None), f"{prefix}.{output}"
    return None


def _mean_length(rows: Sequence[Mapping[str, Any]], column: str) -> float:
    return sum(len(str(r.get(column) or "")) for r in rows) / max(1, len(rows))


def suggest_map(rows: Sequence[Mapping[str, Any]]) -> str | None:
    """The ``--map`` that would read ``rows``, from their column names and value types."""
    if not rows:
        return None
    first = rows[0]
    texts = [str(k) for k in first if isinstance(first[k], str)]
    turns = next((str(k) for k, v in first.items() if _is_turns(v)), None)
    if turns is not None:
        return f"messages={turns}"
    prompt = _pick(texts, ("prompt",), PROMPT_WORDS)
    chosen = _pick(texts, ("chosen",), CHOSEN_WORDS)
    rejected = _pick(texts, ("rejected",), REJECTED_WORDS)
    if prompt and chosen and rejected:
        return f"prompt={prompt},chosen={chosen},rejected={rejected}"
    nested = _nested_pair(first)
    if prompt and nested:
        given, output = nested
        return f"instruction={prompt}" + (f",input={given}" if given else "") + f",output={output}"
    response = _pick([t for t in texts if t != prompt], ("response", "chosen"), RESPONSE_WORDS + CHOSEN_WORDS)
    others = [t for t in texts if t not in (prompt, response)]
    if prompt is None and response is not None and others:
        prompt = max(others, key=lambda c: _mean_length(rows, c))  # the one text column left that says most
    if prompt is None and response is None and len(texts) >= 2:
        # no telling names: the two longest text columns, the shorter (on average) being the request
        a, b = sorted(texts, key=lambda c: _mean_length(rows, c))[-2:]
        prompt, response = a, b
    if prompt and response:
        return f"instruction={prompt},output={response}"
    if prompt or texts:
        return f"prompt={prompt or max(texts, key=lambda c: _mean_length(rows, c))}"
    return None


def _annotation(column: str, row: Mapping[str, Any]) -> bool:
    """A column a judge wrote (``<judge>_<field>``, beside its ``<judge>_status``): never data."""
    parts = column.split("_")
    return any(f"{'_'.join(parts[:n])}_status" in row for n in range(1, len(parts)))


def _holds_records(value: Any) -> bool:
    """Nested data a judge could have been meant to read: an object, or a list of objects/lists
    (a list of numbers or of short tags is an annotation, not content)."""
    if isinstance(value, dict):
        return bool(value)
    return isinstance(value, list) and any(isinstance(v, dict | list) for v in value)


def unread_columns(rows: Iterable[Mapping[str, Any]], read: Iterable[str]) -> dict[str, str]:
    """Columns outside ``read`` whose values a layout would silently drop: nested records, or
    text under a response-like name.  Maps each such column to what it holds."""
    taken = {path.split(".")[0] for path in read}
    found: dict[str, str] = {}
    for row in rows:
        for column, value in row.items():
            name = str(column)
            if name in taken or name in found or _annotation(name, row):
                continue
            if _holds_records(value):
                found[name] = "nested data"
            elif isinstance(value, str) and value.strip() and column_kind(name) in ("response", "chosen", "rejected"):
                found[name] = "response-like text"
    return found


def wrapped_records(rows: Sequence[Any]) -> tuple[str, int] | None:
    """(key, count) when the file is one object wrapping a list of records under ``key``
    (``{"data": [{...}, ...]}``), which a one-line .json or .jsonl file reads as a single row."""
    if len(rows) != 1 or not isinstance(rows[0], dict):
        return None
    for key, value in rows[0].items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value) and not _is_turns(value):
            return str(key), len(value)
    return None
