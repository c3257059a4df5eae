"""DEITA ``evol`` mode helpers: the in-depth operations and the rank-and-score reader.

methods.md 3.2 / 3.3: a seed is evolved M times in sequence (each step rewrites the previous
variant), then one call ranks and scores all M + 1 variants together; the original's score is
the sample's score.  How the paper picks an operation per step is not stated (WizardLM samples
at random).  Here the choice is deterministic, so a re-run hits the cache: the chain starts at an
offset derived from a hash of the seed text and walks the list in order,
``op(step) = OPS[(offset + step - 1) % len(OPS)]``, which covers every operation before any
repeats and still varies the starting operation across samples.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from winnow.judges.base import ParseError
from winnow.judges.parsing import extract_json
from winnow.types import Reply

# In-depth evolving operations for instructions (methods.md 3.2), in our own words.
COMPLEXITY_OPS = (
    "add one more constraint or requirement that the answer must satisfy.",
    "ask about the subject in more depth and breadth, so the answer needs deeper knowledge.",
    "replace general concepts with more specific, concrete ones.",
    "make it explicitly require several steps of reasoning to solve.",
)

# Response-evolution operations (methods.md 3.3), in our own words.
QUALITY_OPS = (
    "make the response more helpful to the user.",
    "make the response more relevant to the prompt.",
    "give the response more depth.",
    "make the response more creative.",
    "add useful details to the response.",
)

RANK_RANGE = (1.0, 6.0)  # labels stay in 1..6 whatever the number of variants (pitfall P-D7)

_LABELS = re.compile(
    r"^\s*(?:#\s*)?(?:rewritten|improved|new|evolved)\s+(?:prompt|response|version)\s*#?\s*:\s*",
    re.IGNORECASE,
)
_RANK_LINE = re.compile(
    r"\[\s*(?:response|query|question|item)?\s*(\d+)\s*\][^\n\d]*?score\W{0,6}?([-+]?\d+(?:\.\d+)?)",
    re.IGNORECASE,
)


def choose_op(ops: tuple[str, ...], seed_text: str, step: int) -> str:
    """The operation for evolution ``step`` (1-based) of the chain that starts at ``seed_text``."""
    offset = int.from_bytes(hashlib.blake2b(seed_text.encode("utf-8"), digest_size=4).digest(), "big")
    return ops[(offset + step - 1) % len(ops)]


def parse_evolution(reply: Reply) -> dict[str, Any]:
    """The rewritten text, minus a leading label the model may echo; empty is a ParseError."""
    text = _LABELS.sub("", reply.text.strip(), count=1).strip()
    if not text:
        raise ParseError("the rewrite is empty")
    return {"text": text}


def _scores_from_json(text: str, n: int) -> dict[int, float]:
    try:
        value = extract_json(text)
    except ParseError:
        return {}
    if isinstance(value, dict) and isinstance(value.get("scores"), list | dict):
        value = value["scores"]
    out: dict[int, float] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            digits = re.sub(r"\D", "", str(k))
            if digits and isinstance(v, int | float):
                out.setdefault(int(digits), float(v))
    elif isinstance(value, list):
        for i, item in enumerate(value, start=1):
            if isinstance(item, int | float) and not isinstance(item, bool):
                out.setdefault(i, float(item))
            elif isinstance(item, dict) and isinstance(item.get("score"), int | float):
                index = item.get("index", item.get("id", i))
                out.setdefault(int(index) if isinstance(index, int | float) else i, float(item["score"]))
    return out


def parse_rank(text: str, n: int) -> dict[str, Any]:
    """``[k] Score: s`` lines (or a JSON equivalent) for k = 1..n; every score within 1..6.

    All n items must be scored: a reply that skips variants has misread the list, so it is
    re-asked rather than trusted for item 1.
    """
    scores: dict[int, float] = {}
    for match in _RANK_LINE.finditer(text):
        scores.setdefault(int(match.group(1)), float(match.group(2)))
    if len(set(scores) & set(range(1, n + 1))) < n:
        from_json = _scores_from_json(text, n)
        if len(set(from_json) & set(range(1, n + 1))) == n:
            scores = from_json
    missing = [k for k in range(1, n + 1) if k not in scores]
    if missing:
        raise ParseError(f"no score for item(s) {', '.join(map(str, missing))} of {n}")
    lo, hi = RANK_RANGE
    bad = [f"[{k}] {scores[k]:g}" for k in range(1, n + 1) if not lo <= scores[k] <= hi]
    if bad:
        raise ParseError(f"scores outside {lo:g}-{hi:g}: {', '.join(bad)}")
    return {"scores": [scores[k] for k in range(1, n + 1)]}
