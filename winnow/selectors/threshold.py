"""AlpaGasus threshold selection and a plain top-k ranking (methods.md 1.4).

AlpaGasus has no ranking, no diversity step and no budget: every row whose judge score is
``>= tau`` is kept, in pool order (P-A3: inclusive; P-A5: pool order).  ``top_k_select`` is
the obvious budgeted variant (used for "top-k by score" baselines); it is *not* the
AlpaGasus method and is kept separate so the two can never be confused.

A row whose judgment failed (status not ``"ok"``) or whose score is ``None``/NaN is never
selected: a failed judgment is "unscored", never a low score (architecture.md rule 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["threshold_select", "top_k_select", "valid_scores"]


def valid_scores(
    scores: Sequence[float | None], statuses: Sequence[str | None] | None
) -> list[float | None]:
    """Return the scores with every unusable row replaced by ``None``.

    Unusable = status present and not ``"ok"``, score ``None`` or NaN.  Raises
    ``ValueError`` naming the row and field for a length mismatch or a non-numeric score,
    because nothing may be dropped silently.
    """
    if statuses is not None and len(statuses) != len(scores):
        raise ValueError(
            f"field 'status': {len(statuses)} statuses for {len(scores)} scores (lengths must match)"
        )
    out: list[float | None] = []
    for i, s in enumerate(scores):
        if statuses is not None and statuses[i] != "ok":
            out.append(None)
            continue
        if s is None:
            out.append(None)
            continue
        if isinstance(s, bool) or not isinstance(s, int | float):
            raise ValueError(f"row {i}: field 'score' must be a number or None, got {s!r}")
        f = float(s)
        out.append(None if math.isnan(f) else f)
    return out


def threshold_select(
    scores: Sequence[float | None],
    statuses: Sequence[str | None] | None,
    min_score: float,
) -> list[int]:
    """Indices of rows with ``score >= min_score`` in pool order (methods.md 1.4, P-A3, P-A5)."""
    if isinstance(min_score, bool) or not isinstance(min_score, int | float) or math.isnan(min_score):
        raise ValueError(f"min_score must be a number, got {min_score!r}")
    return [i for i, s in enumerate(valid_scores(scores, statuses)) if s is not None and s >= min_score]


def top_k_select(
    scores: Sequence[float | None],
    statuses: Sequence[str | None] | None,
    k: int | None = None,
    frac: float | None = None,
) -> list[int]:
    """Indices of the highest-scored rows, best first.

    Ties keep pool order (stable sort on the original index), so a rerun gives the same
    subset.  Give at most one of ``k`` (a count) and ``frac`` (a fraction of the whole
    pool, failed rows included, rounded down: ``floor(frac * len(scores))``; the product is
    rounded to 9 decimals first so that 0.29 * 100 gives 29, not 28).  With neither, all
    usable rows are returned in rank order.  Failed rows are never selected, so the result
    may be shorter than ``k``.
    """
    if k is not None and frac is not None:
        raise ValueError("give at most one of k and frac")
    valid = valid_scores(scores, statuses)
    limit = len(valid)
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"k must be a non-negative integer, got {k!r}")
        limit = k
    elif frac is not None:
        if not isinstance(frac, int | float) or not 0.0 <= frac <= 1.0:
            raise ValueError(f"frac must be in [0, 1], got {frac!r}")
        limit = math.floor(round(frac * len(valid), 9))
    pairs = [(i, s) for i, s in enumerate(valid) if s is not None]
    pairs.sort(key=lambda p: (-p[1], p[0]))
    return [i for i, _ in pairs[:limit]]
