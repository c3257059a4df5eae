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
SCORE_KEYS = ("score", "rating", "accuracy", "grade", "overall", "result", "value", "final", "综合得分", "评分", "得分",
              "总分", "점수", "평점", "点数", "スコア")

_NUM = r"(\d+(?:[.,]\d+)?|[.,]\d+)(?!\d|\s*%)"  # 4 | 4.5 | 4,5 | .5; not a percentage
_SCALE = r"(?:\s*(?:/|out\s+of|of\s+a\s+(?:possible|maximum(?:\s+of)?))\s*(\d+(?:\.\d+)?))?"
_SCORED = _NUM + _SCALE
_TAIL = r"(?:\s*(?:points?|stars?|pts)\b)?"
_NOT_A_LIST = r"(?!\s*,\s*\d)"  # "rated as 5, 1, and 3": numbers of something else

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_MARKUP = re.compile(r"\*\*|__|`|^[ \t]{0,3}#{1,6}[ \t]*|^[ \t]*>[ \t]?|(?<=\s)\*(?=\S)|(?<=\S)\*(?=\s|$)",
                     re.MULTILINE)
_BRACKETED = re.compile(r"\[\[\s*([^\[\]\n]{1,20}?)\s*\]\]|\[\s*(\d+(?:[.,]\d+)?(?:\s*/\s*\d+)?)\s*\]")

_LABEL = (r"(?:(?:final|overall|total)\s+)?(?:score|rating|grade|result|accuracy|evaluation|verdict|complexity|"
          r"quality|helpfulness)|综合得分|评分|得分|总分|分数|점수|평점|点数|スコア|評価")
_COLON = r"['\"]?\s*[:=：]"  # 'Score:', '"score": 4' inside broken JSON, '评分：4'
_LEAD = r"^(?:[^\w.,\-\n]|-(?!\d))*"  # markup and bullets before a number, never the dot of ".5"
# Level 1: the first line holds the score alone ("4.5", "Score: 4", "**Rating: 4.5/5**") ...
_ALONE = re.compile(_LEAD + r"(?:(?:" + _LABEL + r")\W{0,4})?" + _SCORED + _TAIL + r"\W*$", re.IGNORECASE)
# ... and every "Label: n" elsewhere in the reply must agree with it
_STRONG = re.compile(r"(?:" + _LABEL + r")" + _COLON + r"\s*(?:an?\s+)?" + _SCORED + _NOT_A_LIST, re.IGNORECASE)
# Level 2: a labelled score anywhere ("Score: 4", "Rating - 4.5/5", "[RESULT] 4", "a score of 4").
_LABELLED = re.compile(
    r"(?:(?:" + _LABEL + r")(?:\s*\(\s*\d\s*-\s*\d+\s*\))?(?:" + _COLON + r"|\s*[\-–—\]]|\s+is|\s+would\s+be)"
    r"|\b(?:a|an|my|final|overall|total)\s+(?:score|rating|grade)\s+of)"
    r"\s*(?:an?\s+)?" + _SCORED + _NOT_A_LIST,
    re.IGNORECASE,
)
# Level 3: the first line opens with a score and goes on ("4.5 - accurate and complete").
_LEADING = re.compile(_LEAD + _SCORED + _TAIL + r"(?=\s*(?:[-–—:;(]|,\s*\D|$))", re.IGNORECASE)
# Level 4: a sentence that states it ("I would rate this response 4.5 out of 5", "I give it a 4.").
_SENTENCE = re.compile(
    r"\b(?:rate|rates|rated|rating|give|gives|giving|assign|assigns|award|awards|deserves?|earns?|score|say|says)\s+"
    r"(?:[^\W\d][\w'’]*\s+){0,8}?"
    + _SCORED + _TAIL
    + r"(?!\s*,?\s*(?:or|maybe|perhaps|possibly|to)\s+(?:an?\s+)?\d)" + _NOT_A_LIST
    + r"(?=\s*(?:$|[.,;:!)]|out\b|because\b|for\b|since\b|as\b|due\b|on\b|in\b|given\b|overall\b))",
    re.IGNORECASE,
)
# Level 5: a line that is only a number ("## Score\n4").
_BARE_LINE = re.compile(_LEAD + _SCORED + _TAIL + r"\W*$", re.MULTILINE | re.IGNORECASE)
# Level 6: a number word opening the first line as a score, or after a label ("Four - strong",
# "Score: four and a half"); never one inside prose ("the two main stages").
_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10}
_WORD = r"(" + "|".join(_WORDS) + r")(\s+and\s+a\s+half)?"
_WORD_ALONE = re.compile(_LEAD + r"(?:(?:" + _LABEL + r")\W{0,4})?" + _WORD + r"\b(?=\s*(?:[-–—:;,.!(]|$))",
                         re.IGNORECASE)
_WORD_LABELLED = re.compile(r"(?:" + _LABEL + r")" + _COLON + r"\s*" + _WORD + r"\b", re.IGNORECASE)
# An additive rubric ("1. Add 1 point if ...", Self-Rewarding LMs' prompt): its "Score: 1 point" lines
# score one criterion each, so only a stated total counts.
_ADDITIVE = re.compile(r"\badd\s+(?:1|one|another|a\s+(?:second|third|fourth|fifth))\s+points?\b", re.IGNORECASE)
_TOTAL = re.compile(r"\b(?:total|final|overall)\s+(?:score|points?|rating)" + _COLON + r"?\s*(?:is\s+|of\s+)?"
                    + _SCORED + _NOT_A_LIST, re.IGNORECASE)
# A scale the reply declares ("on a scale of 1 to 10", "a 1-10 scale", "a 10-point scale").
_DECLARED = re.compile(
    r"scale\s+(?:of\s+|from\s+)?(\d+)\s*(?:-|–|to)\s*(\d+)|\b(\d+)\s*(?:-|–|to)\s*(\d+)\s+scale|\b(\d+)-point\s+scale",
    re.IGNORECASE,
)


def read_score(text: str, lo: float, hi: float, native: tuple[float, ...] = ()) -> float:
    """The score in [lo, hi] that ``text`` states; ``ParseError`` with the reason otherwise.

    ``native``: other denominators read as they are (DEITA's rank prompt scores 1-5 and keeps 6
    for "too complex", so ``4/5`` from a 1-6 judge is 4).
    """
    if not text or not text.strip():
        raise ParseError("the reply is empty")
    scale = _Scale(lo, hi, native)
    from_json = _json_score(text, scale)
    if from_json is not None:
        return from_json
    body = _clean(text)
    lines = [line for line in body.splitlines() if line.strip()]
    if not lines:
        raise ParseError("the reply has no text besides markup")
    scale.read(body)
    if _ADDITIVE.search(body):
        totals = _all(_TOTAL, body)
        if not totals:
            raise ParseError("the reply scores an additive rubric criterion by criterion and states no total")
        return scale.agreed([(m.group(1), m.group(2)) for m in totals], "its totals")
    first = lines[0]
    levels: list[tuple[str, Callable[[], list[re.Match[str]]]]] = [
        ("its score lines", lambda: _alone(first, body)),
        ("a labelled score", lambda: _all(_LABELLED, body)),
        ("the first line", lambda: _all(_LEADING, first)),
        ("a rating sentence", lambda: _all(_SENTENCE, body)),
        ("a line of its own", lambda: _all(_BARE_LINE, body)),
    ]
    for where, find in levels:
        matches = find()
        if matches:
            return scale.agreed([(m.group(1), m.group(2)) for m in matches], where)
    word = _WORD_ALONE.match(first) or _WORD_LABELLED.search(body)
    if word:
        value = _WORDS[word.group(1).lower()] + (0.5 if word.group(2) else 0.0)
        return scale.place(float(value), None, word.group(0).strip())
    raise ParseError(f"no score between {lo:g} and {hi:g}: none on the first line, after a label "
                     "(Score:, Rating:), or in a rating sentence")


class _Scale:
    """The judge's range, and the scale the reply itself declares, if any."""

    def __init__(self, lo: float, hi: float, native: tuple[float, ...]) -> None:
        self.lo, self.hi, self.native = lo, hi, native
        self.declared: tuple[float, float] | None = None
        self.body = ""

    def read(self, body: str) -> None:
        self.body = body
        for m in _DECLARED.finditer(body):
            low, high = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4)) if m.group(3) else (
                "1", m.group(5))
            pair = (float(low), float(high))
            if pair[1] != self.hi and pair[1] not in self.native and pair[1] > 0:
                self.declared = pair
                return

    def agreed(self, found: list[tuple[str, str | None]], where: str) -> float:
        values = []
        for raw, denominator in found:
            shown = raw + (f"/{denominator}" if denominator else "")
            values.append(self.place(_number(raw), float(denominator) if denominator else None, shown))
        distinct = sorted(set(values))
        if len(distinct) > 1:
            listed = " and ".join(f"{v:g}" for v in distinct)
            raise ParseError(f"the reply gives different scores in {where} ({listed}): ambiguous")
        return distinct[0]

    def place(self, value: float, denominator: float | None, shown: str) -> float:
        """``value`` on the judge's [lo, hi], from a fraction of ``denominator`` when one is named
        (or declared by the reply, or written beside the same number elsewhere: "8 out of 10")."""
        lo, hi = self.lo, self.hi
        if not math.isfinite(value):
            raise ParseError(f"the score {shown} is not a number")
        low = 0.0
        if denominator is None and self.declared is not None:
            low, denominator = self.declared
            shown += f" (on the reply's {low:g}-{denominator:g} scale)"
        if denominator is None and not lo <= value <= hi:
            denominator = self._written_with(value)
            if denominator is not None:
                shown += f" (written as {value:g}/{denominator:g} too)"
        if denominator is not None and denominator != hi and denominator not in self.native:
            if lo != 0 or low != 0 or denominator <= 0 or not 0 <= value <= denominator:
                raise ParseError(f"the score {shown} is on another scale than {lo:g}-{hi:g}: not converted")
            value = value * hi / denominator  # a 0-based scale maps exactly: 9/10 -> 4.5 on 0-5
        if not lo <= value <= hi:
            raise ParseError(f"the score {shown} is outside {lo:g}-{hi:g} and the reply names no scale")
        return value

    def _written_with(self, value: float) -> float | None:
        """The denominator the reply writes beside this same number elsewhere, if exactly one."""
        number = f"{value:g}".replace(".", r"[.,]")
        found = {float(m.group(1)) for m in re.finditer(
            r"(?<![\d.,])" + number + r"\s*(?:/|out\s+of)\s*(\d+(?:\.\d+)?)", self.body, re.IGNORECASE)}
        return found.pop() if len(found) == 1 else None


def _all(pattern: re.Pattern[str], text: str) -> list[re.Match[str]]:
    return list(pattern.finditer(text))


def _alone(first: str, body: str) -> list[re.Match[str]]:
    """The first line when it is a score alone, with every "Label: n" of the reply (P-A2)."""
    match = _ALONE.match(first)
    return [match, *_STRONG.finditer(body, len(first))] if match else []


def _clean(text: str) -> str:
    """Fences opened, markdown emphasis and headers removed, ``[[4]]`` / ``[4]`` unwrapped."""
    text = _FENCE.sub(lambda m: m.group(1), text)
    text = _MARKUP.sub("", text)
    return _BRACKETED.sub(lambda m: m.group(1) or m.group(2), text)


def _number(raw: str) -> float:
    return float(raw.replace(",", ".") if raw.count(",") == 1 else raw)


def _json_score(text: str, scale: _Scale) -> float | None:
    """The score of a JSON reply (``{"score": 4, ...}``, fenced or not); None when it is no such reply."""
    stripped = _FENCE.sub(lambda m: m.group(1), text).strip()
    if not stripped.startswith("{"):
        return None
    from winnow.judges.parsing import AmbiguousReply, extract_json

    try:
        data = extract_json(stripped)
    except AmbiguousReply:
        raise  # two different JSON judgments: a failure with the reason, not a reading of the text
    except ParseError:
        return None
    if not isinstance(data, dict):
        return None
    value = _keyed(data)
    if value is None:
        return None
    if isinstance(value, str):
        return read_score(value, scale.lo, scale.hi, scale.native) if value.strip() else None
    return scale.place(float(value), None, str(value))


def _keyed(data: dict[str, Any], depth: int = 0) -> Any:
    """The score under a known key; one level down when a key holds an object or a JSON string
    (``{"final": "{\"score\": 4}"}``)."""
    lowered = {str(k).lower(): v for k, v in data.items()}
    for key in SCORE_KEYS:
        value = lowered.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            return value
        if isinstance(value, str) and not value.lstrip().startswith("{"):
            return value
    if depth < 2:
        for value in lowered.values():
            if isinstance(value, str) and value.lstrip().startswith("{"):
                from winnow.judges.parsing import extract_json

                try:
                    value = extract_json(value)
                except ParseError:
                    continue
            if isinstance(value, dict):
                found = _keyed(value, depth + 1)
                if found is not None:
                    return found
    return None
