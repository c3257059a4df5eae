"""The report's "Can this judge be trusted?" section (issue 19 item 4).

Per judge: the bias figures computed from the pool itself (score against response length, with
its plot), and, when given, the agreement with labels (``winnow agree --json``: the figures and
the agreement matrix) and the stability under re-judging (``winnow audit stability --json``:
the figures and a bar of rows kept vs lost).  Then a verdict in plain words, with the thresholds
it used written next to it, so a reader can disagree with the rule and still read the figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from winnow.audit.svg import bar_chart, scatter_chart

__all__ = ["RULES", "trust_section", "verdict"]

# The verdict's thresholds, shown in the report beside it.
RULES = {
    "length": 0.3,  # |Spearman(score, response length)| at or above: the judge rewards length
    "kappa_good": 0.6, "kappa_weak": 0.4,  # quadratic kappa with labels (Landis & Koch's bands)
    "stable": 0.9, "unstable": 0.75,  # share of selected rows that stay selected under re-judging
}


def verdict(
    bias: Any, agreement: Mapping[str, Any] | None, stability: Mapping[str, Any] | None
) -> tuple[str, list[str]]:
    """("trust" | "use with care" | "do not trust" | "not enough evidence", reasons).  "trust" needs
    the length check, agreement with labels and stability all fine; a problem found by any one of
    them is enough for "use with care" or "do not trust", with what was not checked listed."""
    reasons: list[str] = []
    level = 0  # 0 fine, 1 care, 2 do not trust
    checked = 0
    rho, ci = bias.correlations.get("response length", (None, None)) if bias is not None else (None, None)
    if rho is not None:
        checked += 1
        if abs(rho) >= RULES["length"] and ci is not None and not ci[0] <= 0.0 <= ci[1]:
            level = max(level, 1)
            reasons.append(f"scores move with response length (Spearman {rho:+.2f}, |rho| >= {RULES['length']})")
        else:
            reasons.append(f"no strong length bias (Spearman {rho:+.2f})")
    if agreement is not None:
        kappa = (agreement.get("figures") or {}).get("quadratic_kappa")
        if kappa is not None:
            checked += 1
            band = ("substantial" if kappa >= RULES["kappa_good"]
                    else "moderate" if kappa >= RULES["kappa_weak"] else "weak")
            if kappa < RULES["kappa_weak"]:
                level = 2
            elif kappa < RULES["kappa_good"]:
                level = max(level, 1)
            reasons.append(f"{band} agreement with {agreement.get('labels_column')} (quadratic kappa {kappa:.2f})")
    if stability is not None:
        kept = (stability.get("figures") or {}).get("selected rows that stay selected")
        if kept is not None:
            checked += 1
            if kept < RULES["unstable"]:
                level = 2
                reasons.append(f"the subset is unstable: {kept:.0%} of selected rows stay selected when judged again")
            elif kept < RULES["stable"]:
                level = max(level, 1)
                reasons.append(f"noisy at the threshold: {kept:.0%} of selected rows stay selected when judged again")
            else:
                reasons.append(f"stable: {kept:.0%} of selected rows stay selected when judged again")
    missing = _missing(agreement, stability)
    if level == 0 and (checked == 0 or missing):  # "trust" needs every check; a warning needs one
        return "not enough evidence", reasons + [f"missing: {m}" for m in missing]
    return ("trust", "use with care", "do not trust")[level], reasons + [f"also missing: {m}" for m in missing]


def _missing(agreement: Mapping[str, Any] | None, stability: Mapping[str, Any] | None) -> list[str]:
    """The checks a "trust" verdict needs that are absent.  Why: the length check alone is measured
    on the pool for free and says nothing of whether the scores are right or repeatable."""
    out = []
    if agreement is None or (agreement.get("figures") or {}).get("quadratic_kappa") is None:
        out.append("agreement with labels (winnow agree --json, then --trust)")
    if stability is None:
        out.append("stability under re-judging (winnow audit stability --json, then --trust)")
    elif (stability.get("figures") or {}).get("selected rows that stay selected") is None:
        out.append("the stability file's share of selected rows that stay selected (it was run without a "
                   "selection threshold: pass --threshold)")
    return out


def trust_section(samples: Sequence[Any] | None, judges: Sequence[str],
                  trust: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The section's HTML; empty when there is nothing to say (no scored judge)."""
    from winnow.audit.bias import bias_report

    trust = trust or {}
    parts: list[str] = []
    for judge in judges:
        given = trust.get(judge, {})
        bias = None
        if samples is not None and any(f"{judge}_score" in s.row for s in samples[:50]):
            bias = bias_report(samples, judge, resamples=300)
            if bias.n < 3:
                bias = None
        if bias is None and not given:
            continue
        word, reasons = verdict(bias, given.get("agreement"), given.get("stability"))
        parts.append(f'<h3>{escape(judge)}: <span class="verdict">{escape(word)}</span></h3>')
        parts.append("<ul>" + "".join(f"<li>{escape(r)}</li>" for r in reasons) + "</ul>")
        charts = []
        if bias is not None:
            lines = "".join(f"<li>{escape(line.strip())}</li>" for line in bias.lines()[1:])
            parts.append(f"<p>Bias ({bias.n} rows, Spearman with bootstrap 95% intervals):</p><ul>{lines}</ul>")
            xs = [x for x, _ in bias.points] or [0.0]
            ys = [y for _, y in bias.points] or [0.0]
            y_range = (min(ys), max(ys) if max(ys) > min(ys) else min(ys) + 1)
            charts.append(scatter_chart(f"{judge}: score against response length", {"rows": bias.points},
                                        "response length (characters)", "score", (0.0, max(xs) or 1.0), y_range))
        if given.get("stability"):
            stab = given["stability"]
            kept = (stab.get("figures") or {}).get("selected rows that stay selected")
            if kept is not None:
                charts.append(bar_chart(f"{judge}: selected rows under re-judging", ["stay selected", "drop out"],
                                        {"share": [kept, 1 - kept]}))
            parts.append(_figures("Stability", stab))
        if given.get("agreement"):
            agr = given["agreement"]
            parts.append(_figures(f"Agreement with {agr.get('labels_column')}", agr))
            parts.append(_matrix(agr))
        if charts:
            parts.append('<div class="charts">' + "".join(charts) + "</div>")
    if not parts:
        return ""
    rules = (f"Rules: a length bias is |Spearman| >= {RULES['length']} with an interval excluding 0; agreement is "
             f"substantial at quadratic kappa >= {RULES['kappa_good']}, weak below {RULES['kappa_weak']}; a subset is "
             f"stable when >= {RULES['stable']:.0%} of selected rows stay selected, unstable below "
             f"{RULES['unstable']:.0%}. Verdicts: trust (all three checks given and fine) / use with care / do not "
             "trust / not enough evidence (no problem found, but a check is missing).")
    return '<h2 id="trust">Can this judge be trusted?</h2>' + f'<p class="muted">{escape(rules)}</p>' + "".join(parts)


def _figures(title: str, report: Mapping[str, Any]) -> str:
    rows = []
    for name, value in (report.get("figures") or {}).items():
        ci = (report.get("intervals") or {}).get(name)
        shown = "undefined" if value is None else f"{value:.4f}"
        rows.append(f"<tr><td>{escape(name)}</td><td class=\"num\">{shown}</td><td class=\"num\">"
                    + (f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "") + "</td></tr>")
    return (f"<p>{escape(title)}:</p><table><tr><th>figure</th><th>value</th><th>95% interval</th></tr>"
            + "".join(rows) + "</table>")


def _matrix(agreement: Mapping[str, Any]) -> str:
    """The agreement matrix as a heat table: darker where more rows fall."""
    confusion = agreement.get("confusion") or []
    bins = agreement.get("bins") or []
    peak = max((c for row in confusion for c in row), default=0) or 1
    head = "".join(f"<th>{escape(str(b))}</th>" for b in bins)
    body = []
    for label, row in zip(bins, confusion, strict=False):
        cells = "".join(
            f'<td class="num heat" style="background: rgba(31,119,180,{c / peak:.2f})">{c}</td>' for c in row
        )
        body.append(f"<tr><th>{escape(str(label))}</th>{cells}</tr>")
    return ('<p>Agreement matrix (rows: the judge, columns: the labels on the judge\'s scale):</p>'
            f'<table class="matrix"><tr><th></th>{head}</tr>{"".join(body)}</table>')
