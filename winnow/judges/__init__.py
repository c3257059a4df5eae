"""Judges: a template + an output model + a parser each.  They never call a model."""

from winnow.judges.base import Answer, Ask, CallSpec, Judge, ParseError, RequestFailed, SingleCallJudge, Verdict
from winnow.judges.registry import BUILTIN, get_judge

__all__ = [
    "BUILTIN", "Answer", "Ask", "CallSpec", "Judge", "ParseError", "RequestFailed", "SingleCallJudge", "Verdict",
    "get_judge",
]
