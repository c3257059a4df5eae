"""Compare two judgments of the same rows: agreement, confusion, selection overlap, disagreements.

Input is two lists of judged rows (the output of ``rate``) aligned by sample id, so it works
the same for "one file, two models" and "two judged files".  Nothing here calls a model or
reads the cache: the CLI obtains the rows (from the cache when they are there).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from winnow.audit.agreement import (
    bin_labels,
    bin_scores,
    confusion_matrix,
    exact_agreement,
    jaccard,
    kendall_tau_b,
    quadratic_kappa,
    scale_for,
    spearman,
)

__all__ = ["TAG_JUDGES", "compare_rows", "format_comparison", "pair_rows", "row_text"]

TAG_JUDGES = ("instag",)


def row_text(row: dict[str, Any], limit: int = 160) -> str:
    """A one-line preview of a row's instruction (Alpaca, ShareGPT or messages layouts)."""
    text = row.get("instruction") or row.get("prompt") or row.get("question")
    if not text:
        turns = row.get("conversations") or row.get("messages") or []
        if isinstance(turns, list) and turns and isinstance(turns[0], dict):
            text = turns[0].get("value") or turns[0].get("content")
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pair_rows(
    rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]], ids_a: Sequence[str] | None = None,
    ids_b: Sequence[str] | None = None,
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(id, row_a, row_b) for every id both sides have, in A's order; by position if no ids."""
    if ids_a is None or ids_b is None:
        n = min(len(rows_a), len(rows_b))
        return [(str(i), rows_a[i], rows_b[i]) for i in range(n)]
    by_id = dict(zip(ids_b, rows_b, strict=True))
    return [(i, ra, by_id[i]) for i, ra in zip(ids_a, rows_a, strict=True) if i in by_id]


def _ok(row: dict[str, Any], judge: str) -> bool:
    status = row.get(f"{judge}_status")
    return status in (None, "ok")


def _score(row: dict[str, Any], judge: str) -> float | None:
    value = row.get(f"{judge}_score")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _tags(row: dict[str, Any], judge: str) -> frozenset[str] | None:
    value = row.get(f"{judge}_tags")
    if not isinstance(value, list):
        return None
    return frozenset(str(t) for t in value)


def compare_rows(
    rows_a: Sequence[dict[str, Any]],
    rows_b: Sequence[dict[str, Any]],
    judge: str,
    *,
    names: tuple[str, str] = ("A", "B"),
    ids_a: Sequence[str] | None = None,
    ids_b: Sequence[str] | None = None,
    threshold: float | None = None,
    top: int = 5,
) -> dict[str, Any]:
    """Agreement report of judge ``judge`` between two judgments of the same rows.

    Scores: exact agreement of binned scores, Spearman, Kendall tau-b, quadratic-weighted
    kappa, the confusion matrix, the overlap of the subsets kept at ``threshold`` (score >=
    threshold, as the AlpaGasus selector), and the ``top`` rows with the largest gap.
    Tags (InsTag): mean per-row Jaccard and the overlap of the two tag vocabularies.
    Only rows both sides judged successfully are compared; the counts say how many.
    """
    judge = judge.replace("-", "_")
    pairs = pair_rows(rows_a, rows_b, ids_a, ids_b)
    report: dict[str, Any] = {
        "judge": judge, "names": list(names), "rows_a": len(rows_a), "rows_b": len(rows_b),
        "paired": len(pairs),
        "failed_a": sum(1 for _, ra, _ in pairs if not _ok(ra, judge)),
        "failed_b": sum(1 for _, _, rb in pairs if not _ok(rb, judge)),
    }
    if judge in TAG_JUDGES:
        report.update(_compare_tags(pairs, judge, top))
    else:
        report.update(_compare_scores(pairs, judge, threshold, top))
    return report


def _compare_scores(
    pairs: list[tuple[str, dict[str, Any], dict[str, Any]]], judge: str, threshold: float | None, top: int
) -> dict[str, Any]:
    both = []
    for sid, ra, rb in pairs:
        sa, sb = _score(ra, judge), _score(rb, judge)
        if _ok(ra, judge) and _ok(rb, judge) and sa is not None and sb is not None:
            both.append((sid, ra, rb, sa, sb))
    a = [x[3] for x in both]
    b = [x[4] for x in both]
    scale = scale_for(judge, a + b)
    ba, bb = bin_scores(a, scale), bin_scores(b, scale)
    k = len(bin_labels(scale))
    out: dict[str, Any] = {
        "kind": "scores",
        "compared": len(both),
        "scale": list(scale),
        "exact_agreement": exact_agreement(ba, bb),
        "spearman": spearman(a, b),
        "kendall_tau_b": kendall_tau_b(a, b),
        "quadratic_kappa": quadratic_kappa(ba, bb, k),
        "mean_a": sum(a) / len(a) if a else None,
        "mean_b": sum(b) / len(b) if b else None,
        "labels": bin_labels(scale),
        "confusion": confusion_matrix(ba, bb, k),
        "scores_a": a,
        "scores_b": b,
    }
    if threshold is not None:
        kept_a = {x[0] for x in both if x[3] >= threshold}
        kept_b = {x[0] for x in both if x[4] >= threshold}
        common = kept_a & kept_b
        out["selection"] = {
            "threshold": threshold, "kept_a": len(kept_a), "kept_b": len(kept_b), "kept_both": len(common),
            "jaccard": jaccard(kept_a, kept_b),
            "overlap": len(common) / min(len(kept_a), len(kept_b)) if kept_a and kept_b else None,
        }
    worst = sorted(both, key=lambda x: -abs(x[3] - x[4]))[:top]
    out["disagreements"] = [
        {
            "id": sid, "text": row_text(ra), "score_a": sa, "score_b": sb,
            "explanation_a": ra.get(f"{judge}_explanation"), "explanation_b": rb.get(f"{judge}_explanation"),
        }
        for sid, ra, rb, sa, sb in worst if sa != sb
    ]
    return out


Pairs = list[tuple[str, dict[str, Any], dict[str, Any]]]


def _compare_tags(pairs: Pairs, judge: str, top: int) -> dict[str, Any]:
    both = []
    for sid, ra, rb in pairs:
        ta, tb = _tags(ra, judge), _tags(rb, judge)
        if _ok(ra, judge) and _ok(rb, judge) and ta is not None and tb is not None:
            both.append((sid, ra, ta, tb, jaccard(ta, tb)))
    vocab_a: Counter[str] = Counter(t for x in both for t in x[2])
    vocab_b: Counter[str] = Counter(t for x in both for t in x[3])
    va, vb = set(vocab_a), set(vocab_b)
    worst = sorted(both, key=lambda x: x[4])[:top]
    return {
        "kind": "tags",
        "compared": len(both),
        "mean_jaccard": sum(x[4] for x in both) / len(both) if both else None,
        "vocab_a": len(va), "vocab_b": len(vb), "vocab_both": len(va & vb),
        "vocab_jaccard": jaccard(va, vb),
        "top_tags_a": vocab_a.most_common(15), "top_tags_b": vocab_b.most_common(15),
        "disagreements": [
            {"id": sid, "text": row_text(ra), "tags_a": sorted(ta), "tags_b": sorted(tb), "jaccard": j}
            for sid, ra, ta, tb, j in worst if j < 1.0
        ],
    }


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_comparison(report: dict[str, Any]) -> str:
    """The comparison as plain text for the terminal."""
    name_a, name_b = report["names"]
    lines = [
        f"judge {report['judge']}: A = {name_a}, B = {name_b}",
        f"  rows: {report['paired']} paired; judge_failed: A {report['failed_a']}, B {report['failed_b']}; "
        f"compared {report['compared']}",
    ]
    if report["kind"] == "tags":
        lines += [
            f"  mean per-row Jaccard: {_num(report['mean_jaccard'])}",
            f"  vocabulary: A {report['vocab_a']}, B {report['vocab_b']}, both {report['vocab_both']} "
            f"(Jaccard {_num(report['vocab_jaccard'])})",
        ]
        for d in report["disagreements"]:
            lines.append(f"  - [{d['id']}] J={d['jaccard']:.2f} {d['text'][:80]}")
            lines.append(f"      A: {', '.join(d['tags_a'])}")
            lines.append(f"      B: {', '.join(d['tags_b'])}")
        return "\n".join(lines)
    lines += [
        f"  exact agreement (binned): {_num(report['exact_agreement'])}",
        f"  Spearman rho: {_num(report['spearman'])}   Kendall tau-b: {_num(report['kendall_tau_b'])}",
        f"  quadratic-weighted kappa: {_num(report['quadratic_kappa'])}",
        f"  mean score: A {_num(report['mean_a'], 2)}, B {_num(report['mean_b'], 2)}",
    ]
    sel = report.get("selection")
    if sel:
        lines.append(
            f"  kept at >= {sel['threshold']:g}: A {sel['kept_a']}, B {sel['kept_b']}, "
            f"both {sel['kept_both']} "
            f"(Jaccard {_num(sel['jaccard'])}, overlap {_num(sel['overlap'])})"
        )
    labels = report["labels"]
    used = [i for i in range(len(labels))
            if any(report["confusion"][i]) or any(row[i] for row in report["confusion"])]
    if used:
        lines.append("  confusion (rows A, columns B):")
        width = max(5, *(len(labels[i]) for i in used))
        lines.append("    " + " " * width + "".join(f"{labels[i]:>{width + 1}}" for i in used))
        for i in used:
            cells = "".join(f"{report['confusion'][i][j]:>{width + 1}}" for j in used)
            lines.append(f"    {labels[i]:>{width}}{cells}")
    if report["disagreements"]:
        lines.append("  largest disagreements:")
    for d in report["disagreements"]:
        lines.append(f"  - [{d['id']}] A {d['score_a']:g} vs B {d['score_b']:g}: {d['text'][:90]}")
        for side in ("a", "b"):
            expl = " ".join(str(d.get(f"explanation_{side}") or "").split())[:160]
            if expl:
                lines.append(f"      {side.upper()}: {expl}")
    return "\n".join(lines)
