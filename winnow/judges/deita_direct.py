"""DEITA ``direct`` mode: one 1-6 score per turn, read as an expectation over digit log-probs.

methods.md 3.4 / pitfall P-D1: the score is sum k * p_k with p renormalised over the digit
tokens 1..6 only.  A chat model behind an API is not a trained scorer, so the digit may not
be the first token ("Score: 4"); the expectation is taken at the first position whose chosen
token is the digit the reply states, within the first 16 tokens.  Without such a position (no
log-probs, a number word, "4.5") the stated score is used and recorded as ``parsed``.
"""

from __future__ import annotations

from typing import Any

from winnow.judges.base import ParseError
from winnow.judges.parsing import digit_probabilities, expected_digit_score, extract_json, score_from_text
from winnow.types import Reply, TokenLogprob

DIGITS = range(1, 7)
SCORE_RANGE = (1.0, 6.0)
RANK_SCALE = (5.0,)  # "4/5" is 4: DEITA's rank prompts score 1-5 and keep 6 for "beyond" (methods.md 3.2)
SCAN_TOKENS = 16  # the engine also keeps only the first 16 positions in the record


def digit_probs(position: TokenLogprob, digits: range = DIGITS) -> dict[str, float]:
    """Digit probabilities at one position with string keys ("1".."6"), so they store as JSON."""
    return {str(k): p for k, p in digit_probabilities(position, digits).items()}


def score_position(logprobs: list[TokenLogprob] | None, stated: float) -> int | None:
    """Index of the token that carries the stated score, or None."""
    if not logprobs or stated != int(stated):
        return None
    for i, position in enumerate(logprobs[:SCAN_TOKENS]):
        stripped = position.token.strip()
        if stripped.isdigit() and int(stripped) == int(stated):
            return i
    return None


def read_logprob_score(reply: Reply, stated: float) -> dict[str, Any]:
    """The parsed value for a stated score: the logprob expectation when possible."""
    index = score_position(reply.logprobs, stated)
    if index is not None and reply.logprobs is not None:
        probs = digit_probs(reply.logprobs[index])
        expected = expected_digit_score(reply.logprobs[index:], DIGITS)
        if probs and expected is not None:
            return {"score": expected, "method": "logprobs", "digit_probs": probs, "stated": stated}
    return {"score": stated, "method": "parsed", "digit_probs": {}, "stated": stated}


def parse_direct(reply: Reply) -> dict[str, Any]:
    """A 1-6 score from the text (number, "Score: n", number word); out of range is a ParseError.

    The text is validated first even when log-probs exist, so a reply "7" or "nine" is re-asked
    rather than turned into an expectation over digits the model did not mean.
    """
    stated = score_from_text(reply.text, *SCORE_RANGE, native=RANK_SCALE)
    return read_logprob_score(reply, stated)


# With constrained decoding the digit comes right after '{"score": ', so the expectation is
# read at that token (score_position finds it among the first 16 tokens).
DIRECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 6}},
    "required": ["score"],
}


def parse_direct_json(reply: Reply) -> dict[str, Any]:
    """``{"score": n}`` from a structured reply; falls back to the free-text reading."""
    try:
        data = extract_json(reply.text)
    except ParseError:
        return parse_direct(reply)
    value = data.get("score") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ParseError('expected {"score": <digit 1-6>}')
    if not SCORE_RANGE[0] <= float(value) <= SCORE_RANGE[1]:
        raise ParseError(f"the score {value} is outside 1-6")
    return read_logprob_score(reply, float(value))
