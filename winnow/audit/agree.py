"""``agree``: how well a judge's scores agree with labels you trust, with 95% intervals.

Labels are a column of the judged file (another judge's score counts: "does gpt-4o-mini agree with
gpt-4o?" is one call), or of a second file joined by sample id; numeric or ordinal, or pass/fail.
Figures: Spearman's rho and Kendall's tau-b (scipy.stats), Cohen's quadratic-weighted kappa on a
common scale (both sides mapped linearly onto the judge's bins; scipy has no kappa, so
``agreement.quadratic_kappa`` stays, cross-checked against a direct formula in the tests), the
mean absolute error on the judge's scale, the confusion matrix, and what decides a subset:
precision and recall of the judge's selection against the labels' selection at the same
threshold (mapped) or the same budget.  Every figure has a paired bootstrap 95% interval
(scipy.stats.bootstrap, percentile, fixed seed).  Rows whose judgment failed or whose label is
missing are left out and counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Agreement", "agree_rows"]

PASS = {"pass", "passed", "true", "yes", "1", "ok", "good"}
FAIL = {"fail", "failed", "false", "no", "0", "bad"}


@dataclass
class Agreement:
    score_column: str
    labels_column: str
    n: int
    left_out: dict[str, int]
    figures: dict[str, float | None]
    intervals: dict[str, tuple[float, float] | None]
    confusion: list[list[int]]
    bins: list[str]
    selection: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"{self.score_column} against {self.labels_column}: {self.n} rows"
               + (f" (left out: {', '.join(f'{k} {v}' for k, v in self.left_out.items())})" if self.left_out else "")]
        for name, value in self.figures.items():
            ci = self.intervals.get(name)
            shown = "undefined" if value is None else f"{value:.4f}"
            interval = f"  95% CI [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
            out.append(f"  {name}: {shown}{interval}")
        if self.selection:
            out.append(f"  selection: {self.selection['rule']}; the judge keeps {self.selection['judge_kept']}, "
                       f"the labels keep {self.selection['labels_kept']}, both {self.selection['both']}")
        out.append("  confusion (rows: judge bins, columns: label bins mapped to the judge's scale): "
                   + " / ".join(self.bins))
        out += ["    " + " ".join(f"{c:4d}" for c in row) for row in self.confusion]
        return out


def _number(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None if not isinstance(value, bool) else float(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in PASS:
            return 1.0
        if text in FAIL:
            return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def agree_rows(
    rows: Sequence[dict[str, Any]],
    score_column: str,
    labels_column: str,
    *,
    labels: Sequence[Any] | None = None,
    judge_scale: tuple[float, float, float] | None = None,
    label_scale: tuple[float, float] | None = None,
    threshold: float | None = None,
    budget: int | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> Agreement:
    """Agreement of ``score_column`` with labels (``labels_column`` of the rows, or ``labels``
    aligned with them).  ``threshold`` (on the judge's scale) or ``budget`` sets the selection
    compared; the labels select at the same threshold mapped onto their scale, or the same budget."""
    import numpy as np

    from winnow.audit import agreement
    from winnow.audit.agreement import (
        bin_labels,
        bin_scores,
        bootstrap_interval,
        confusion_matrix,
        quadratic_kappa,
        scale_for,
    )
    from winnow.selection import judges_of_column

    judge = score_column.rsplit("_", 1)[0]
    left_out: dict[str, int] = {}
    xs: list[float] = []
    ys: list[float] = []
    statuses = [f"{j}_status" for j in judges_of_column(score_column)]
    for i, row in enumerate(rows):
        if any(s in row and row[s] != "ok" for s in statuses):
            left_out["failed judgment"] = left_out.get("failed judgment", 0) + 1
            continue
        score = _number(row.get(score_column))
        label = _number(labels[i] if labels is not None else row.get(labels_column))
        if score is None:
            left_out["no score"] = left_out.get("no score", 0) + 1
            continue
        if label is None:
            left_out["no label"] = left_out.get("no label", 0) + 1
            continue
        xs.append(score)
        ys.append(label)
    if len(xs) < 3:
        raise ValueError(f"{score_column} vs {labels_column}: {len(xs)} rows with both a score and a label; "
                         "agreement needs at least 3")
    lo, hi, step = judge_scale or scale_for(judge, xs)
    y_lo, y_hi = label_scale or (min(ys), max(ys))
    k = round((hi - lo) / step) + 1

    def to_judge_scale(values: Any) -> Any:
        values = np.asarray(values, dtype=float)
        if y_hi == y_lo:
            return np.full_like(values, lo)
        return lo + (values - y_lo) * (hi - lo) / (y_hi - y_lo)

    x = np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    y_mapped = to_judge_scale(y)

    def kappa(a: Any, b: Any) -> float:
        value = quadratic_kappa(bin_scores(list(a), (lo, hi, step)), bin_scores(list(b), (lo, hi, step)), k)
        return float("nan") if value is None else value

    spearman = agreement.statistic(agreement.spearman)
    kendall = agreement.statistic(agreement.kendall_tau_b)

    def mae(a: Any, b: Any) -> float:
        return float(np.mean(np.abs(np.asarray(a) - np.asarray(b))))

    measures = {"spearman": spearman, "kendall_tau_b": kendall, "quadratic_kappa": kappa, "mae": mae}
    rule, judge_keep, label_keep = _selection_rule(x, y_mapped, threshold, budget)
    if rule:
        def precision(a: Any, b: Any) -> float:
            j, lab = judge_keep(a), label_keep(b)
            return float(np.sum(j & lab) / np.sum(j)) if np.sum(j) else float("nan")

        def recall(a: Any, b: Any) -> float:
            j, lab = judge_keep(a), label_keep(b)
            return float(np.sum(j & lab) / np.sum(lab)) if np.sum(lab) else float("nan")

        measures["selection_precision"] = precision
        measures["selection_recall"] = recall
    figures: dict[str, float | None] = {}
    intervals: dict[str, tuple[float, float] | None] = {}
    for name, fn in measures.items():
        value = fn(x, y_mapped)
        figures[name] = None if math.isnan(value) else value
        intervals[name] = bootstrap_interval(fn, x, y_mapped, resamples, seed) if figures[name] is not None else None
    selection: dict[str, Any] = {}
    if rule:
        j, lab = judge_keep(x), label_keep(y_mapped)
        selection = {"rule": rule, "judge_kept": int(np.sum(j)), "labels_kept": int(np.sum(lab)),
                     "both": int(np.sum(j & lab))}
    confusion = confusion_matrix(bin_scores(list(x), (lo, hi, step)), bin_scores(list(y_mapped), (lo, hi, step)), k)
    return Agreement(score_column, labels_column, len(xs), left_out, figures, intervals, confusion,
                     bin_labels((lo, hi, step)), selection)


def _selection_rule(x: Any, y: Any, threshold: float | None, budget: int | None) -> tuple[str, Any, Any]:
    """(description, judge keeps, labels keep): the same threshold, or the same budget (top n by
    value, ties broken by position so both sides keep exactly n)."""
    import numpy as np

    if threshold is not None:
        return (f"score >= {threshold:g} on both sides (labels mapped to the judge's scale)",
                lambda a: np.asarray(a) >= threshold, lambda b: np.asarray(b) >= threshold)
    if budget is not None:
        def top(values: Any) -> Any:
            values = np.asarray(values)
            order = np.lexsort((np.arange(len(values)), -values))[: min(budget, len(values))]
            keep = np.zeros(len(values), dtype=bool)
            keep[order] = True
            return keep

        return f"the top {budget} on each side", top, top
    return "", None, None
