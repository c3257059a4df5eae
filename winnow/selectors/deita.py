"""DEITA evol score and score-first, diversity-aware selection (methods.md 3.5, 3.7, 3.10).

Selection, with batch_size = 1 as in the reference default (3.7)::

    order = eligible rows by score descending, ties by original index (P-D6, stable)
    take order[0]                                   # the top sample is always taken
    for each later candidate x: accept iff max cos(x, y) over selected y <= tau
    stop when |selected| == budget (no backfill when the pool runs out first)

* Similarity is ``<=`` exactly, no epsilon (P-D10).  The reference rejects on
  ``sim > tau``: accepting ``sim <= tau`` is the same test (P-D4: it is *not* distilabel's
  whole-pool nearest neighbour, nor a distance test).
* A zero vector has no cosine (NaN in the reference, and ``NaN > tau`` is false): it is never
  rejected and never blocks another sample (P-D9).  Such samples are counted.
* Rows with a ``None``/NaN score (failed judgment) are excluded and counted in ``failed``.
* The defining similarity is ``cos(x, y) = min(1, (x.y) / sqrt(|x|^2 |y|^2))`` in float64.
  It is exact for multi-hot vectors and small integer vectors, so "exactly at the threshold"
  cases behave as on paper (e.g. 9 shared of 10 tags each: cos = 0.9 is accepted at tau = 0.9),
  and the clamp keeps a duplicate at cos = 1 (not 1 + 1 ulp) so tau = 1 rejects nothing.

Speed without changing the result: dense vectors go through ``_deita_dense`` (batched float32
screen with a rigorous rounding margin, float64 recheck near tau, and a hash pre-filter that
only ever rejects with a certified witness).  Multi-hot vectors use an inverted index tag ->
selected rows, so memory stays O(nnz), never N x vocab or N x N.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

from winnow.selectors._deita_dense import select_dense
from winnow.selectors._tagsets import intern_tag_sets, offsets

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DeitaResult", "MultiHot", "deita_score", "deita_select", "multi_hot"]

def deita_score(complexity_scores: Sequence[float], quality_scores: Sequence[float]) -> float:
    """Evol score s = sum_t c_t * q_t over user turns (methods.md 3.5, P-D3: not (sum c)(sum q))."""
    if len(complexity_scores) != len(quality_scores):
        raise ValueError(
            f"fields 'complexity_scores' ({len(complexity_scores)}) and 'quality_scores' "
            f"({len(quality_scores)}) must have one value per user turn"
        )
    total = 0.0
    for t, (c, q) in enumerate(zip(complexity_scores, quality_scores, strict=True)):
        for name, v in (("complexity_scores", c), ("quality_scores", q)):
            if v is None or isinstance(v, bool) or not isinstance(v, int | float) or math.isnan(v):
                raise ValueError(f"turn {t}: field '{name}' must be a number, got {v!r}")
        total += float(c) * float(q)
    return total


@dataclass(frozen=True, slots=True)
class MultiHot:
    """Binary sparse rows: row i has ones at ``indices[indptr[i]:indptr[i+1]]`` (distinct)."""

    indptr: np.ndarray
    indices: np.ndarray
    vocab: list[str]

    def __len__(self) -> int:
        return len(self.indptr) - 1

    def to_dense(self) -> np.ndarray:
        """Dense float32 matrix; only for small pools (N x vocab)."""
        import numpy as np

        out = np.zeros((len(self), len(self.vocab)), dtype=np.float32)
        rows = np.repeat(np.arange(len(self)), np.diff(self.indptr))
        out[rows, self.indices] = 1.0
        return out


def multi_hot(tag_sets: Sequence[Iterable[str] | None]) -> MultiHot:
    """The default DEITA vector of a sample: its distinct tags as a multi-hot row."""
    flat, lengths, vocab = intern_tag_sets(tag_sets)
    return MultiHot(indptr=offsets(lengths), indices=flat, vocab=vocab)


@dataclass(frozen=True, slots=True)
class DeitaResult:
    """``indices``: pool indices in selection (descending-score) order."""

    indices: list[int]
    rejected: int
    zero_vectors: int
    reached_budget: bool
    failed: int


def _order(scores: Sequence[float | None], n: int) -> tuple[np.ndarray, int]:
    import numpy as np

    vals = np.full(n, np.nan)
    for i, s in enumerate(scores):
        if s is None:
            continue
        if isinstance(s, bool) or not isinstance(s, int | float):
            raise ValueError(f"row {i}: field 'score' must be a number or None, got {s!r}")
        vals[i] = s
    eligible = np.flatnonzero(~np.isnan(vals))
    return eligible[np.argsort(-vals[eligible], kind="stable")], n - len(eligible)


def deita_select(
    scores: Sequence[float | None],
    vectors: Any,
    budget: int | None = None,
    threshold: float = 0.9,
) -> DeitaResult:
    """Score-first, diversity-aware selection (methods.md 3.7, batch_size 1).

    ``vectors``: an (N x d) array (model embeddings) or a :class:`MultiHot` (tags).
    ``budget``: ``None`` or -1 means no budget.
    """
    import numpy as np

    if budget is None or budget == -1:
        cap: int | None = None
    elif isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"budget must be a non-negative integer, -1 or None, got {budget!r}")
    else:
        cap = budget
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or math.isnan(threshold):
        raise ValueError(f"threshold must be a number, got {threshold!r}")
    n = len(scores)
    if n == 0 and len(vectors) == 0:
        return DeitaResult([], 0, 0, cap == 0, 0)
    if not isinstance(vectors, MultiHot):
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.number):
            raise ValueError(f"field 'vectors' must be a numeric N x d matrix, got shape {vectors.shape}")
    if len(vectors) != n:
        raise ValueError(f"field 'vectors' has {len(vectors)} rows for {n} scores (one row per sample)")
    order, failed = _order(scores, n)
    limit = len(order) if cap is None else cap
    if isinstance(vectors, MultiHot):
        sel, rejected, zeros = _select_sparse(order, vectors, limit, float(threshold))
    else:
        sel, rejected, zeros = select_dense(order, vectors, limit, float(threshold))
    return DeitaResult(sel, rejected, zeros, cap is not None and len(sel) == cap, failed)


def _select_sparse(order: np.ndarray, mh: MultiHot, limit: int, tau: float) -> tuple[list[int], int, int]:
    """Exact integer intersections through an inverted index tag id -> selected slots."""
    import numpy as np

    indptr, indices = mh.indptr, mh.indices
    postings: list[list[int]] = [[] for _ in mh.vocab]
    sel_len = np.zeros(max(1, min(limit, len(order))), dtype=np.float64)  # |y| of selected rows
    k = 0  # selected non-zero rows
    out: list[int] = []
    rejected = 0
    zeros = int(np.count_nonzero(np.diff(indptr)[order] == 0))
    for c in order.tolist():
        if len(out) >= limit:
            break
        na = int(indptr[c + 1] - indptr[c])
        if na == 0:  # P-D9: never rejected, never blocks
            out.append(c)
            continue
        tags = indices[indptr[c] : indptr[c + 1]].tolist()
        if k:
            if tau < 0:  # every multi-hot cosine is >= 0 > tau
                rejected += 1
                continue
            hits = np.fromiter(chain.from_iterable(map(postings.__getitem__, tags)), dtype=np.int64)
            if hits.size:
                inter = np.bincount(hits)
                js = np.flatnonzero(inter)
                if (np.minimum(inter[js] / np.sqrt(na * sel_len[js]), 1.0) > tau).any():
                    rejected += 1
                    continue
        for t in tags:
            postings[t].append(k)
        sel_len[k] = na
        k += 1
        out.append(c)
    return out, rejected, zeros
