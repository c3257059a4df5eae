"""The "did you mean" hint that every refusal of a misspelt name ends with.

One place, low in the layers (it imports nothing of winnow), so the data layer, the judges, the
pipeline and the audit commands all word the hint the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["did_you_mean"]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """"; did you mean 'x'?" for the closest of ``choices``, or nothing: a hint, never a guess taken."""
    close = difflib.get_close_matches(name, sorted(set(choices)), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
