"""Reading a score from what a judge wrote: the ladder every text-scoring judge shares.

methods.md 1.3 and pitfall P-A2 ask for the first number in range on the first line, then the
number after "score:" in any case.  Judges other than the paper's ChatGPT write much more than
that: markdown (``**Score**: 4``), other labels (``Rating:``, ``Accuracy:``, ``[RESULT]``,
``[[4]]``), fractions (``4.5/5``, ``9/10``, ``4.5 out of 5``), leading-dot and comma decimals
(``.5``, ``4,5``), sentences ("I would rate this 4.5 out of 5"), a preamble before the score,
JSON.  The ladder reads them in levels, strongest first; the first level that finds a score
decides, and within a level every score found must agree.

What it never does is guess (architecture.md rule 2): two different scores, a number outside
the range with no scale named, or a scale it cannot map (``7/10`` for a 1-6 judge) are
``ParseError`` with the reason, so the engine re-asks and the row is never selected on a guess.
A fraction on another scale is rescaled only when the judge's range starts at 0, where the
mapping is exact (``9/10`` -> 4.5 on 0-5).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from winnow.judges.base import ParseError

__all__ = ["SCORE_KEYS", "read_score"]

# keys a JSON reply may carry its score under, in order of preference
SCORE_KEYS = ("score", "rating", "accuracy", "grade", "overall", "result", "value")

_NUM = r"(\d+(?:[.,]\d+)?|[.,]\d+)(?!\d|\s*%)"  # 4 | 4.5 | 4,5 | .5; not a percentage
_SCALE = r"(?:\s*(?:/|out\s+of|of\s+a\s+(?:possible|maximum(?:\s+of)?))\s*(\d+(?:\.\d+)?))?"
_SCORED = _NUM + _SCALE
_TAIL = r"(?:\s*(?:points?|stars?|pts)\b)?"

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_MARKUP = re.compile(r"\*\*|__|`|^\s{0,3}#{1,6}\s*|^\s*>\s?|(?<=\s)\*(?=\S)|(?<=\S)\*(?=\s|$)", re.MULTILINE)
_BRACKETED = re.compile(r"\[\[\s*([^\[\]\n]{1,20}?)\s*\]\]|\[\s*(\d+(?:[.,]\d+)?(?:\s*/\s*\d+)?)\s*\]")

# Level 1: the first line holds the score alone ("4.5", "Score: 4", "**Rating: 4.5/5**").
_LABEL = r"(?:(?:final|overall|total)\s+)?(?:score|rating|grade|result|accuracy|evaluation|verdict)"
_LEAD = r"^[^\w.,]*"  # markup and bullets before a number, never the dot of ".5"
_ALONE = re.compile(_LEAD + r"(?:" + _LABEL + r"\W{0,4})?" + _SCORED + _TAIL + r"\W*$", re.IGNORECASE)
# ...and every other line that is a label and a score alone must agree with it
_LABEL_LINE = re.compile(_LEAD + _LABEL + r"\W{0,4}" + _SCORED + _TAIL + r"\W*$", re.IGNORECASE | re.MULTILINE)
# Level 2: a labelled score anywhere ("Score: 4", "Rating - 4.5/5", "score of 4", "[RESULT] 4").
_LABELLED = re.compile(
    r"\b" + _LABEL + r"\b(?:\s*\(\s*\d\s*-\s*\d+\s*\))?(?:\s*(?:[:=\-–—\]]|is|of|would\s+be|be)\s*){1,3}(?:an?\s+)?"
    + _SCORED,
    re.IGNORECASE,
)
# Level 3: the first line opens with a score and goes on ("4.5 - accurate and complete").
_LEADING = re.compile(_LEAD + _SCORED + _TAIL + r"(?=\s*(?:[-–—:;,(]|$))", re.IGNORECASE)
# Level 4: a sentence that states it ("I would rate this response 4.5 out of 5", "I give it a 4.").
_SENTENCE = re.compile(
    r"\b(?:rate|rates|rated|rating|give|gives|giving|assign|assigns|award|awards|deserves?|earns?)\s+"
    r"(?:(?:this|the|it|its|that|my|an?|response|answer|output|assistant'?s?|reply|one|overall|final|"
    r"score|rating|grade|of|as|with|at|to|be)\s+){0,5}"
    + _SCORED + _TAIL + r"(?=\s*(?:$|[.,;:!)]|out\b|because\b|for\b|since\b|as\b|due\b|on\b|in\b|given\b))",
    re.IGNORECASE,
)
# Level 5: a line that is only a number ("## Score\n4").
_BARE_LINE = re.compile(_LEAD + _SCORED + _TAIL + r"\W*$", re.MULTILINE | re.IGNORECASE)
# Level 6: a number word on the first line ("Four", "four and a half").
_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10}
_WORD = re.compile(r"\b(" + "|".join(_WORDS) + r")(\s+and\s+a\s+half)?\b", re.IGNORECASE)


def read_score(text: str, lo: float, hi: float) -> float:
    """The score in [lo, hi] that ``text`` states; ``ParseError`` with the reason otherwise."""
    if not text or not text.strip():
        raise ParseError("the reply is empty")
    from_json = _json_score(text, lo, hi)
    if from_json is not None:
        return from_json
    body = _clean(text)
    lines = [line for line in body.splitlines() if line.strip()]
    if not lines:
        raise ParseError("the reply has no text besides markup")
    first = lines[0]
    levels: list[tuple[str, Callable[[], list[re.Match[str]]]]] = [
        ("the first line", lambda: _alone(first, body)),
        ("a labelled score", lambda: _all(_LABELLED, body)),
        ("the first line", lambda: _all(_LEADING, first)),
        ("a rating sentence", lambda: _all(_SENTENCE, body)),
        ("a line of its own", lambda: _all(_BARE_LINE, body)),
    ]
    for where, find in levels:
        matches = find()
        if matches:
            return _agreed([(m.group(1), m.group(2)) for m in matches], lo, hi, where)
    word = _WORD.search(first)
    if word:
        value = _WORDS[word.group(1).lower()] + (0.5 if word.group(2) else 0.0)
        return _on_scale(float(value), None, lo, hi, word.group(0))
    raise ParseError(f"no score between {lo:g} and {hi:g}: none on the first line, after a label "
                     "(Score:, Rating:), or in a rating sentence")


def _all(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    return list(pattern.finditer(text))


def _alone(first: str, body: str) -> list[re.Match[str]]:
    """The first line when it is a score alone, with every label line of the reply (P-A2)."""
    match = _ALONE.match(first)
    return [match, *_LABEL_LINE.finditer(body)] if match else []


def _clean(text: str) -> str:
    """Fences opened, markdown emphasis and headers removed, ``[[4]]`` / ``[4]`` unwrapped."""
    text = _FENCE.sub(lambda m: m.group(1), text)
    text = _MARKUP.sub("", text)
    return _BRACKETED.sub(lambda m: m.group(1) or m.group(2), text)


def _number(raw: str) -> float:
    return float(raw.replace(",", ".") if raw.count(",") == 1 else raw)


def _agreed(found: list[tuple[str, str | None]], lo: float, hi: float, where: str) -> float:
    values = []
    for raw, scale in found:
        value = _number(raw)
        values.append(_on_scale(value, float(scale) if scale else None, lo, hi, raw + (f"/{scale}" if scale else "")))
    distinct = sorted(set(values))
    if len(distinct) > 1:
        shown = " and ".join(f"{v:g}" for v in distinct)
        raise ParseError(f"the reply gives different scores in {where} ({shown}): ambiguous")
    return distinct[0]


def _on_scale(value: float, scale: float | None, lo: float, hi: float, shown: str) -> float:
    """``value`` on the judge's [lo, hi], from a fraction of ``scale`` when one is named."""
    if not math.isfinite(value):
        raise ParseError(f"the score {shown} is not a number")
    if scale is not None and scale != hi:
        if lo != 0 or scale <= 0 or not 0 <= value <= scale:
            raise ParseError(f"the score {shown} is on another scale than {lo:g}-{hi:g}: not converted")
        value = value * hi / scale  # a 0-based scale maps exactly: 9/10 -> 4.5 on 0-5
    if not lo <= value <= hi:
        raise ParseError(f"the score {shown} is outside {lo:g}-{hi:g}")
    return value


def _json_score(text: str, lo: float, hi: float) -> float | None:
    """The score of a JSON reply (``{"score": 4, ...}``, fenced or not); None when it is no such reply."""
    stripped = _FENCE.sub(lambda m: m.group(1), text).strip()
    if not stripped.startswith("{"):
        return None
    from winnow.judges.parsing import extract_json

    try:
        data = extract_json(stripped)
    except ParseError:
        return None
    if not isinstance(data, dict):
        return None
    value = _keyed(data)
    if value is None:
        return None
    if isinstance(value, str):
        return read_score(value, lo, hi) if value.strip() else None
    return _on_scale(float(value), None, lo, hi, str(value))


def _keyed(data: dict[str, Any]) -> Any:
    lowered = {str(k).lower(): v for k, v in data.items()}
    for key in SCORE_KEYS:
        value = lowered.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float | str):
            return value
    return None
