"""The lenient extraction ladder shared by every judge.

Order matters: strict reading first, then progressively looser readings that are still
unambiguous (scores: ``winnow.judges.scores``).  Anything looser than that is a re-ask (done
by the engine), never a guess: a failure must never be turned into a score (architecture.md
rule 2).
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

import orjson

from winnow.judges.base import ParseError
from winnow.judges.scores import read_score
from winnow.types import TokenLogprob

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
def strip_fences(text: str) -> str:
    """Return the content of the first markdown code fence, or the text unchanged."""
    match = _FENCE.search(text)
    return match.group(1).strip() if match else text.strip()


def score_from_text(text: str, lo: float, hi: float, native: tuple[float, ...] = ()) -> float:
    """A score in [lo, hi] from a free-text reply: the ladder in ``winnow.judges.scores``."""
    return read_score(text, lo, hi, native)


def _balanced(text: str, opener: str, closer: str, start: int = 0) -> tuple[int, int] | None:
    """The span of the first balanced ``opener ... closer`` at or after ``start`` (strings skipped)."""
    start = text.find(opener, start)
    while start != -1:
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_str:
                if esc:
                    esc = False
                elif ch == "\\":
                    esc = True
                elif ch == '"':
                    in_str = False
            elif ch == '"':
                in_str = True
            elif ch == opener:
                depth += 1
            elif ch == closer:
                depth -= 1
                if depth == 0:
                    return start, i + 1
        start = text.find(opener, start + 1)
    return None


class AmbiguousReply(ParseError):
    """The reply holds two different JSON objects: taking either would be a guess."""


def extract_json(text: str) -> Any:
    """Parse JSON from a reply: strict, then fenced, then the first balanced object/array.

    A JSON *string* that itself holds JSON (a common model quirk) is decoded once more.  The
    balanced candidates are tried in the order they appear, so the object around a list is
    read, not the list inside it.  When the reply is not one JSON value as a whole and the value
    found is an object, every other top-level object in the reply must be the same one:
    ``{"score": 4} {"score": 2}`` is ``AmbiguousReply``, never the first taken.
    """
    whole = _decoded(text.strip())
    if whole is not None:
        return whole
    candidates = [strip_fences(text)]
    spans = [span for span in (_balanced(text, "[", "]"), _balanced(text, "{", "}")) if span]
    candidates += [text[a:b] for a, b in sorted(spans)]
    for candidate in candidates:
        value = _decoded(candidate)
        if value is not None:
            if isinstance(value, dict):
                _one_object(text, value)
            return value
    raise ParseError("no JSON object or list found in the reply")


def _decoded(candidate: str) -> dict[Any, Any] | list[Any] | None:
    """``candidate`` as a JSON object or list (a JSON string holding one is decoded once more)."""
    value = _loads(candidate)
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    return value if isinstance(value, dict | list) else None


def _one_object(text: str, chosen: dict[Any, Any]) -> None:
    """Refuse a reply whose top-level JSON objects differ (the same object twice is fine)."""
    start = 0
    while (span := _balanced(text, "{", "}", start)) is not None:
        value = _decoded(text[span[0]:span[1]])
        if not isinstance(value, dict):
            start = span[0] + 1  # not an object: look inside it
            continue
        if value != chosen:
            raise AmbiguousReply(f"the reply holds different JSON objects ({_brief(chosen)} and {_brief(value)}): "
                                 "ambiguous")
        start = span[1]


def _brief(value: Any) -> str:
    try:
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_NOTHING = object()
_CURLY = str.maketrans({"\u201c": '"', "\u201d": '"'})


def _loads(candidate: str) -> Any:
    """JSON, read as leniently as is still unambiguous: strict; raw newlines inside strings (small
    models write them, even under a grammar); a Python literal (``{'tag': 'x'}``, which models
    write for "JSON"; ``ast.literal_eval`` evaluates literals only); curly quotes as delimiters."""
    try:
        return orjson.loads(candidate)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(candidate, strict=False)
    except ValueError:
        pass
    if candidate[:1] in "[{" and len(candidate) < 200_000:
        try:
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    straightened = candidate.translate(_CURLY)
    if straightened != candidate:
        return _loads(straightened)
    return _NOTHING


def digit_probabilities(position: TokenLogprob, digits: range) -> dict[int, float]:
    """Probabilities of the digit tokens at one position, renormalised over the digits present.

    methods.md 3.4, P-D1: a softmax over the digit log-probs only (the full-vocabulary
    normaliser cancels).  Digits absent from the top alternatives are left out.
    """
    found: dict[int, float] = {}
    alternatives = dict(position.top)
    alternatives.setdefault(position.token, position.logprob)
    for token, lp in alternatives.items():
        stripped = token.strip()
        if stripped.isdigit() and int(stripped) in digits and lp is not None and math.isfinite(lp):
            k = int(stripped)
            found[k] = max(found.get(k, -math.inf), lp)
    if not found:
        return {}
    peak = max(found.values())
    weights = {k: math.exp(lp - peak) for k, lp in found.items()}
    total = sum(weights.values())
    return {k: weights[k] / total for k in sorted(weights)}


def expected_digit_score(logprobs: list[TokenLogprob] | None, digits: range) -> float | None:
    """Expected score over digit tokens at the first non-blank position: sum k * p_k.

    Returns None when the reply carries no log-probs or none of the digits is among the
    top alternatives, so the caller falls back to the parsed integer and records that.
    """
    if not logprobs:
        return None
    for position in logprobs:
        if not position.token.strip():
            continue  # leading whitespace tokens carry no score
        probs = digit_probabilities(position, digits)
        return sum(k * p for k, p in probs.items()) if probs else None
    return None
