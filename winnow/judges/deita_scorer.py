"""DEITA ``scorer`` mode: a trained DEITA scorer behind an OpenAI-compatible endpoint.

The input templates are the scorers' interface literals (methods.md 3.4) and must match byte
for byte, odd spaces included, so they are Python string literals, not Jinja (whose
whitespace handling could shift a byte), filled by concatenation, not ``str.format`` (sample
text may hold braces).  The prompt is sent as one user message.  A chat server applies the
model's chat template around it; the released scorers were trained with a template that
concatenates messages with no separator, so serve them with a plain/raw chat template (or a
completions-style template) if exact reproduction of DEITA's numbers matters.

The score is the expectation over the digit tokens 1..6 at the first generated token (P-D1,
P-D2), renormalised over the digits present among the top log-probs.  When no digit is there
the reply parses to ``score: None`` (not a ParseError: re-asking a scorer model in chat form is
pointless) and the judge reports judge_failed, or uses an explicit fallback value, counted
(pitfall P-D8: DEITA's silent 3.0 hides failures).
"""

from __future__ import annotations

from typing import Any

from winnow.judges.deita_direct import DIGITS, digit_probs
from winnow.types import Reply

COMPLEXITY_HEAD = (
    "You are a helpful assistant. Please identify the complexity score of the following user query. \n##Query: "
)
COMPLEXITY_TAIL = "  \n##Complexity: "
QUALITY_HEAD = (
    "You are a helpful assistant. Please identify the quality score of the Response corresponding to the "
    "Question. \n #Question#:\n"
)
QUALITY_MIDDLE = "\n#Response#:\n"
QUALITY_TAIL = " \n##Quality: "


def complexity_prompt(instruction: str) -> str:
    return COMPLEXITY_HEAD + instruction + COMPLEXITY_TAIL


def quality_prompt(instruction: str, output: str) -> str:
    return QUALITY_HEAD + instruction + QUALITY_MIDDLE + output + QUALITY_TAIL


def parse_scorer(reply: Reply) -> dict[str, Any]:
    """Expected digit score at the first generated token (leading whitespace-only tokens skipped)."""
    if not reply.logprobs:
        return {"score": None, "method": "missing", "digit_probs": {}, "reason": "the reply has no log-probs"}
    position = next((p for p in reply.logprobs if p.token.strip()), None)
    if position is None:
        return {"score": None, "method": "missing", "digit_probs": {}, "reason": "the reply is only whitespace"}
    probs = digit_probs(position, DIGITS)
    if not probs:
        reason = f"no digit 1-6 among the top log-probs of the first token {position.token!r}"
        return {"score": None, "method": "missing", "digit_probs": {}, "reason": reason}
    score = sum(int(k) * p for k, p in probs.items())
    return {"score": score, "method": "scorer", "digit_probs": probs, "reason": None}
