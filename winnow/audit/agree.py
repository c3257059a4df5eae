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

__all__ = ["Agreement", "agree_rows", "default_label_scale"]

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
    scale: str = ""  # the judge's bins and where they come from (a built-in's, declared, or observed)
    label_scale: str = ""  # the labels' LO-HI mapped onto the judge's scale, and where it came from
    interval_notes: dict[str, str] = field(default_factory=dict)  # why a figure has no (or a partial) interval
    notes: list[str] = field(default_factory=list)  # rows left out or not joined, named
    provenance: dict[str, Any] = field(default_factory=dict)  # the data file, for report --trust to check

    def lines(self) -> list[str]:
        out = [f"{self.score_column} against {self.labels_column}: {self.n} rows"
               + (f" (left out: {', '.join(f'{k} {v}' for k, v in self.left_out.items())})" if self.left_out else "")]
        if self.scale:
            out.append(f"  judge's scale: {self.scale}")
        if self.label_scale:
            out.append(f"  label scale: {self.label_scale}")
        for name, value in self.figures.items():
            ci = self.intervals.get(name)
            shown = "undefined" if value is None else f"{value:.4f}"
            interval = f"  95% CI [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""
            why = self.interval_notes.get(name)
            out.append(f"  {name}: {shown}{interval}" + (f"  ({why})" if why else ""))
        if self.selection:
            out.append(f"  selection: {self.selection['rule']}; the judge keeps {self.selection['judge_kept']}, "
                       f"the labels keep {self.selection['labels_kept']}, both {self.selection['both']}")
        out.append("  confusion (rows: judge bins, columns: label bins mapped to the judge's scale): "
                   + " / ".join(self.bins))
        out += ["    " + " ".join(f"{c:4d}" for c in row) for row in self.confusion]
        out += [f"  note: {note}" for note in self.notes]
        return out


UNREADABLE = object()  # a value present but not a number, pass or fail: counted apart from "no label"


def _number(value: Any) -> Any:
    """A float, None for a missing value, or UNREADABLE for text such as 'n/a'."""
    if isinstance(value, bool):
        return float(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in PASS:
            return 1.0
        if text in FAIL:
            return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return UNREADABLE
    return None if math.isnan(number) else number


def _rows_shown(found: list[tuple[int, Any]], limit: int = 5) -> str:
    """"rows 4 ('n/a'), 9 ('?')": the first few, and how many more."""
    shown = ", ".join(f"{row} ({value!r})" for row, value in found[:limit])
    more = f" and {len(found) - limit} more" if len(found) > limit else ""
    return f"row{'s' if len(found) > 1 else ''} {shown}{more}"


def check_label_scale(label_scale: tuple[float, float] | None) -> None:
    """LO < HI: a reversed scale would silently flip every label, an empty one maps all to one bin."""
    if label_scale is not None and not label_scale[0] < label_scale[1]:
        raise ValueError(f"--label-scale {label_scale[0]:g},{label_scale[1]:g}: LO must be below HI "
                         "(a reversed scale would flip the labels; LO = HI leaves nothing to compare)")


def check_selection(threshold: float | None, budget: int | None) -> None:
    """One selection rule: both would compare two different subsets under one name."""
    if threshold is not None and budget is not None:
        raise ValueError("--threshold and --budget: give one (the selection compared is either score >= "
                         "THRESHOLD on both sides or the top BUDGET on each side)")


def _pairs(rows: Sequence[dict[str, Any]], score_column: str, labels_column: str, labels: Sequence[Any] | None,
           row_numbers: Sequence[int] | None) -> tuple[list[float], list[float], list[int], dict[str, int],
                                                   list[str]]:
    """(scores, labels, row numbers, left out by reason, notes naming unreadable values' rows)."""
    from winnow.selection import judges_of_column

    left_out: dict[str, int] = {}
    unreadable: dict[str, list[tuple[int, Any]]] = {"score": [], "label": []}
    xs: list[float] = []
    ys: list[float] = []
    kept: list[int] = []
    statuses = [f"{j}_status" for j in judges_of_column(score_column)]
    for i, row in enumerate(rows):
        number = row_numbers[i] if row_numbers is not None else i + 1
        raw_label = labels[i] if labels is not None else row.get(labels_column)
        reason = None
        if any(s in row and row[s] != "ok" for s in statuses):
            reason = "failed judgment"
        else:
            score, label = _number(row.get(score_column)), _number(raw_label)
            for what, value, raw in (("score", score, row.get(score_column)), ("label", label, raw_label)):
                if reason is None and value is UNREADABLE:
                    reason = f"unreadable {what}"
                    unreadable[what].append((number, raw))
                elif reason is None and value is None:
                    reason = f"no {what}"
        if reason is not None:
            left_out[reason] = left_out.get(reason, 0) + 1
            continue
        xs.append(score)
        ys.append(label)
        kept.append(number)
    notes = [f"unreadable {what} (not a number, pass or fail), left out: {_rows_shown(found)}"
             for what, found in unreadable.items() if found]
    return xs, ys, kept, left_out, notes


def _check_within(ys: Sequence[float], rows: Sequence[int], label_scale: tuple[float, float] | None,
                  labels_column: str) -> None:
    """Labels outside the declared scale: a typo in the scale or the labels; both distort kappa."""
    if label_scale is None:
        return
    lo, hi = label_scale
    outside = [(r, y) for r, y in zip(rows, ys, strict=True) if not lo <= y <= hi]
    if outside:
        raise ValueError(f"{labels_column}: {len(outside)} labels outside --label-scale {lo:g},{hi:g}: "
                         f"{_rows_shown(outside)}; fix the scale or the labels")


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
    scale_source: str | None = None,
    row_numbers: Sequence[int] | None = None,
) -> Agreement:
    """Agreement of ``score_column`` with labels (``labels_column`` of the rows, or ``labels``
    aligned with them).  ``threshold`` (on the judge's scale) or ``budget`` sets the selection
    compared; the labels select at the same threshold mapped onto their scale, or the same budget.
    ``judge_scale`` defaults to the column's judge's known scale (``columns.score_scale``);
    ``scale_source`` says where a given one came from.  ``label_scale`` defaults to the judge's
    scale when every label fits in it (``default_label_scale``; the result's ``label_scale`` says
    which was used).  ``row_numbers``: each row's number in its file, for the messages (default:
    position + 1)."""
    import numpy as np

    from winnow.audit import agreement
    from winnow.audit.agreement import (
        bin_labels,
        bin_scores,
        confusion_matrix,
        interval_with_reason,
        quadratic_kappa,
    )
    from winnow.audit.columns import ResolvedScore, judge_of_column, score_scale

    check_label_scale(label_scale)
    check_selection(threshold, budget)
    xs, ys, kept_rows, left_out, notes = _pairs(rows, score_column, labels_column, labels, row_numbers)
    if len(xs) < 3:
        counted = ", ".join(f"{k} {v}" for k, v in left_out.items()) or "no rows"
        raise ValueError(f"{score_column} vs {labels_column}: {len(xs)} rows with both a score and a label "
                         f"({counted}); agreement needs at least 3")
    _check_within(ys, kept_rows, label_scale, labels_column)
    if judge_scale is None:
        judge_scale, scale_source = score_scale(ResolvedScore(score_column, judge_of_column(score_column)), xs)
    lo, hi, step = judge_scale
    scale_words = f"{lo:g}-{hi:g} in steps of {step:g}" + (f" ({scale_source})" if scale_source else "")
    (y_lo, y_hi), label_words = default_label_scale(ys, label_scale, (lo, hi))
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
    interval_notes: dict[str, str] = {}
    for name, fn in measures.items():
        value = fn(x, y_mapped)
        figures[name] = None if math.isnan(value) else value
        intervals[name], why = (interval_with_reason(fn, x, y_mapped, resamples, seed) if figures[name] is not None
                                else (None, "undefined on these rows: no interval"))
        if why:
            interval_notes[name] = why
    selection: dict[str, Any] = {}
    if rule:
        j, lab = judge_keep(x), label_keep(y_mapped)
        selection = {"rule": rule, "judge_kept": int(np.sum(j)), "labels_kept": int(np.sum(lab)),
                     "both": int(np.sum(j & lab))}
    confusion = confusion_matrix(bin_scores(list(x), (lo, hi, step)), bin_scores(list(y_mapped), (lo, hi, step)), k)
    return Agreement(score_column, labels_column, len(xs), left_out, figures, intervals, confusion,
                     bin_labels((lo, hi, step)), selection, scale_words, label_words, interval_notes, notes)


def default_label_scale(ys: Sequence[float], label_scale: tuple[float, float] | None,
                        judge_range: tuple[float, float]) -> tuple[tuple[float, float], str]:
    """The labels' LO, HI and a phrase saying where they came from.

    ``--label-scale`` when given; else the judge's own scale when every label fits inside it
    (labels of 3-5 on a 0-5 judge are 0-5 labels: stretching their observed range onto 0-5
    would report a column compared with itself as MAE 1.8, kappa 0.4); else the labels'
    observed range (labels on another scale, such as 1-10 against 0-5).  Labels of 0 and 1 only
    are pass/fail (``_number`` reads "pass" as 1): 0-1, stretched onto the judge's whole scale."""
    if label_scale is not None:
        return label_scale, f"{label_scale[0]:g}-{label_scale[1]:g} (--label-scale)"
    lo, hi = judge_range
    if set(ys) <= {0.0, 1.0} and (lo, hi) != (0.0, 1.0):
        return (0.0, 1.0), ("0-1 (pass/fail labels: fail is the judge's lowest score, pass its highest; "
                            "pass --label-scale LO,HI if they are scores)")
    if all(lo <= y <= hi for y in ys):
        return (lo, hi), (f"{lo:g}-{hi:g} (the judge's scale: every label fits in it; "
                          "pass --label-scale LO,HI if the labels use another)")
    y_lo, y_hi = min(ys), max(ys)
    return (y_lo, y_hi), (f"{y_lo:g}-{y_hi:g} (the labels' observed range: some fall outside the judge's "
                          f"{lo:g}-{hi:g}; pass --label-scale LO,HI to set it)")


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
