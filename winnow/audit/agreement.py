"""Agreement statistics between two judges' scores, in plain numpy.

Why hand-written: scipy/sklearn would be a heavy dependency for five formulas, and writing
them out pins the exact variants used (methods.md section 4 "judge reliability"):
Spearman's rho with average ranks for ties, Kendall's tau-b (tie-corrected), and Cohen's
kappa with quadratic weights over the judge's own score bins.  numpy is imported inside the
functions (CLI start-up stays light).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "SCALES",
    "bin_scores",
    "confusion_matrix",
    "exact_agreement",
    "jaccard",
    "kendall_tau_b",
    "quadratic_kappa",
    "rankdata",
    "scale_for",
    "spearman",
]

# (low, high, step) of each built-in judge's scale: the bins kappa and the confusion matrix use.
SCALES: dict[str, tuple[float, float, float]] = {
    "alpagasus": (0.0, 5.0, 0.5),
    "deita_complexity": (1.0, 6.0, 1.0),
    "deita_quality": (1.0, 6.0, 1.0),
}


def scale_for(judge: str, values: Sequence[float] = ()) -> tuple[float, float, float]:
    """The judge's scale; for an unknown judge, integer bins spanning the observed values."""
    name = judge.replace("-", "_")
    if name in SCALES:
        return SCALES[name]
    if not values:
        return (0.0, 1.0, 1.0)
    return (float(math.floor(min(values))), float(math.ceil(max(values))), 1.0)


def bin_scores(values: Sequence[float], scale: tuple[float, float, float]) -> list[int]:
    """Bin index of each score: nearest step, clipped to the scale (4.74 -> 4.5 on 0.5 steps)."""
    low, high, step = scale
    top = round((high - low) / step)
    # floor(x + 0.5) rounds halves up, unlike Python's banker's round()
    return [min(top, max(0, math.floor((float(v) - low) / step + 0.5))) for v in values]


def bin_labels(scale: tuple[float, float, float]) -> list[str]:
    low, high, step = scale
    return [f"{low + i * step:g}" for i in range(round((high - low) / step) + 1)]


def exact_agreement(a: Sequence[int], b: Sequence[int]) -> float | None:
    if not a:
        return None
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


def rankdata(values: Sequence[float]) -> Any:
    """Ranks 1..n, ties given the average of the ranks they span (as scipy's 'average')."""
    import numpy as np

    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    sorted_x = x[order]
    i = 0
    n = len(x)
    while i < n:
        j = i
        while j + 1 < n and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def _pearson(x: Any, y: Any) -> float | None:
    import numpy as np

    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(np.dot(dx, dx)) * float(np.dot(dy, dy)))
    if denom == 0.0:
        return None  # a constant column: correlation undefined
    return float(np.dot(dx, dy)) / denom


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson correlation of average ranks; None if either side is constant."""
    if len(a) < 2:
        return None
    return _pearson(rankdata(a), rankdata(b))


def kendall_tau_b(a: Sequence[float], b: Sequence[float], chunk: int = 256) -> float | None:
    """Kendall's tau-b = (C - D) / sqrt((n0 - n1)(n0 - n2)), ties corrected.

    Pairwise signs in row chunks: O(n^2) time but O(chunk * n) memory, a second or so for
    10k rows, which is the size of a judged pool.
    """
    import numpy as np

    n = len(a)
    if n < 2:
        return None
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    s = 0.0
    for start in range(0, n, chunk):
        sx = np.sign(x[start : start + chunk, None] - x[None, :])
        sy = np.sign(y[start : start + chunk, None] - y[None, :])
        s += float((sx * sy).sum())
    s /= 2.0  # every unordered pair was counted twice
    n0 = n * (n - 1) / 2.0

    def tied_pairs(v: Any) -> float:
        _, counts = np.unique(v, return_counts=True)
        return float((counts * (counts - 1) / 2.0).sum())

    denom = math.sqrt((n0 - tied_pairs(x)) * (n0 - tied_pairs(y)))
    return s / denom if denom else None


def confusion_matrix(a: Sequence[int], b: Sequence[int], k: int) -> list[list[int]]:
    """k x k counts: row = judge A's bin, column = judge B's bin."""
    matrix = [[0] * k for _ in range(k)]
    for x, y in zip(a, b, strict=True):
        matrix[x][y] += 1
    return matrix


def quadratic_kappa(a: Sequence[int], b: Sequence[int], k: int) -> float | None:
    """Cohen's kappa with weights w_ij = (i - j)^2 / (k - 1)^2.

    kappa = 1 - sum(w * O) / sum(w * E), O the observed confusion matrix, E the outer product
    of the two marginal histograms divided by n.  None when E puts no weight off the diagonal
    (both judges used a single, identical bin): agreement beyond chance is then undefined.
    """
    import numpy as np

    if not a or k < 2:
        return None
    observed = np.asarray(confusion_matrix(a, b, k), dtype=float)
    n = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / n
    idx = np.arange(k)
    weights = (idx[:, None] - idx[None, :]) ** 2 / float((k - 1) ** 2)
    denom = float((weights * expected).sum())
    if denom == 0.0:
        return None
    return 1.0 - float((weights * observed).sum()) / denom


def jaccard(a: set[str] | frozenset[str], b: set[str] | frozenset[str]) -> float:
    """|A & B| / |A | B|; two empty sets agree fully (1.0)."""
    union = a | b
    return len(a & b) / len(union) if union else 1.0
