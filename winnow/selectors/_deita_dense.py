"""Dense-vector engine of DEITA's selection (methods.md 3.7); the result equals the sequential rule.

Definition (see deita.py): candidate c is rejected iff some already-selected non-zero y has
``min(1, x.y / sqrt(|x|^2 |y|^2)) > tau`` in float64.  Two exact accelerations:

1. Batches of ``_BATCH`` candidates: float32 matmuls against the selected matrix (``_CHUNK``
   rows at a time; a candidate with a certain witness skips the remaining chunks), one small
   Gram matrix inside the batch, then a sequential pass over the batch in score order.
2. Float32 similarities carry at most ``margin = (d + 32) * 2**-24`` absolute error for unit
   vectors (dot-product bound gamma_d plus normalisation); only values within that band of
   tau are recomputed in float64, so no float32 rounding can flip a decision.

Cost is one dot product per (candidate, selected) pair: about 2 * candidates * selected * d
flops.  A reject-heavy pool whose budget is never reached is the slow case (see BENCHMARKS.md).
A hash pre-filter (sign random projections, a certified witness from same-bucket rows) was
tried: slower on accept-heavy pools, barely faster on reject-heavy ones, so it was removed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_BATCH = 256
_CHUNK = 1024


def _norms(x: np.ndarray) -> np.ndarray:
    """Float64 squared norms without a float64 copy of the whole matrix; rejects NaN/inf."""
    import numpy as np

    norm2 = np.empty(len(x), dtype=np.float64)
    for a in range(0, len(x), 8192):
        blk = x[a : a + 8192].astype(np.float64)
        norm2[a : a + 8192] = np.einsum("ij,ij->i", blk, blk)
    if not np.isfinite(norm2).all():
        bad = int(np.flatnonzero(~np.isfinite(norm2))[0])
        raise ValueError(f"row {bad}: field 'vectors' holds a NaN or infinite value")
    return norm2


class _Selected:
    """Selected non-zero vectors (float32, unit length, preallocated, grown by doubling)."""

    def __init__(self, d: int, cap: int) -> None:
        import numpy as np

        self.rows: list[int] = []  # pool row of each stored vector
        self.mat = np.empty((max(1, min(cap, 4096)), d), dtype=np.float32)
        self.cap = cap

    def add(self, xb: np.ndarray, rows: list[int]) -> None:
        import numpy as np

        k, need = len(self.rows), len(self.rows) + len(rows)
        if need > len(self.mat):
            grown = np.empty((max(need, min(2 * len(self.mat), self.cap)), self.mat.shape[1]), dtype=np.float32)
            grown[:k] = self.mat[:k]
            self.mat = grown
        self.mat[k:need] = xb
        self.rows.extend(rows)


def _against_selected(
    xl: np.ndarray, sel: _Selected, tau: float, margin: float
) -> tuple[np.ndarray, np.ndarray, dict[int, list[int]]]:
    """Compare a batch with the selected rows, ``_CHUNK`` rows at a time.

    Returns per candidate: the max float32 similarity (complete unless witnessed), whether a
    similarity above ``tau + margin`` was found (a certified rejection: the remaining chunks
    are skipped for that candidate, which halves the work on reject-heavy pools), and the
    selected rows within the rounding band of tau (for the float64 recheck).
    """
    import numpy as np

    prev_max = np.full(len(xl), -np.inf, dtype=np.float64)
    witnessed = np.zeros(len(xl), dtype=bool)
    near: dict[int, list[int]] = {}
    todo = np.arange(len(xl))
    for a in range(0, len(sel.rows), _CHUNK):
        if not todo.size:
            break
        # (chunk x candidates): this orientation keeps OpenBLAS efficient on row slices
        sims = sel.mat[a : min(a + _CHUNK, len(sel.rows))] @ xl[todo].T
        mx = sims.max(axis=0).astype(np.float64)
        prev_max[todo] = np.maximum(prev_max[todo], mx)
        hit = mx > tau + margin
        for r in np.flatnonzero((mx > tau - margin) & ~hit).tolist():
            near.setdefault(int(todo[r]), []).extend((a + np.flatnonzero(sims[:, r] > tau - margin)).tolist())
        witnessed[todo[hit]] = True
        todo = todo[~hit]
    return prev_max, witnessed, near


def select_dense(order: np.ndarray, x: np.ndarray, limit: int, tau: float) -> tuple[list[int], int, int]:
    """Returns (selected pool rows in order, rejected count, zero-vector count in the pool)."""
    import numpy as np

    d = x.shape[1]
    norm2 = _norms(x)
    margin = (d + 32) * 2.0**-24
    sel = _Selected(d, min(limit, len(order)))
    out: list[int] = []
    rejected = 0
    zeros = int(np.count_nonzero(norm2[order] == 0))

    def exact_reject(c: int, rows: list[int]) -> bool:
        dots = x[rows].astype(np.float64) @ x[c].astype(np.float64)
        return bool((np.minimum(dots / np.sqrt(norm2[c] * norm2[rows]), 1.0) > tau).any())

    for p in range(0, len(order), _BATCH):
        if len(out) >= limit:
            break
        cand = order[p : p + _BATCH]
        nrm = np.sqrt(norm2[cand])
        xb = (x[cand].astype(np.float64) / np.where(nrm > 0, nrm, 1.0)[:, None]).astype(np.float32)
        live = nrm > 0
        pos = np.full(len(cand), -1)
        pos[live] = np.arange(int(live.sum()))  # row of each live candidate in prev / gram
        xl = xb[live]
        prev_max, witnessed, near_prev = _against_selected(xl, sel, tau, margin)
        gram = xl @ xl.T
        acc: list[int] = []  # live positions accepted in this batch
        acc_j: list[int] = []
        for j, c in enumerate(cand.tolist()):
            if len(out) >= limit:
                break
            if nrm[j] == 0:  # P-D9: no cosine, never rejected, never blocks
                out.append(c)
                continue
            q = int(pos[j])
            if witnessed[q]:  # a selected row is certainly more similar than tau
                rejected += 1
                continue
            m = float(prev_max[q])
            if acc:
                m = max(m, float(gram[q, acc].max()))
            if m > tau + margin:
                rejected += 1
                continue
            if m > tau - margin:
                near = [sel.rows[i] for i in near_prev.get(q, [])]
                near += [int(cand[acc_j[i]]) for i, a in enumerate(acc) if gram[q, a] > tau - margin]
                if exact_reject(c, near):
                    rejected += 1
                    continue
            acc.append(q)
            acc_j.append(j)
            out.append(c)
        if acc_j:
            sel.add(xb[acc_j], [int(cand[j]) for j in acc_j])
    return out, rejected, zeros
