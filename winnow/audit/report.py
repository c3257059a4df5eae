"""``write_report``: one self-contained HTML file describing a judged pool and its subset.

No network and no dependency to view it: inline CSS, inline SVG charts (``winnow.audit.svg``)
and a one-line script that only reports JavaScript errors in the page title (so a headless
browser test can see them).  It reads judged rows and, optionally, the cache for tokens,
cost and provenance; it never calls a model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import orjson

from winnow.audit import report_data as rd
from winnow.audit.agreement import scale_for
from winnow.audit.compare import row_text
from winnow.audit.svg import bar_chart, line_chart, scatter_chart
from winnow.audit.trust_section import trust_section

__all__ = ["write_report"]

_CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;
padding:0 16px}
h1{font-size:22px}h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;vertical-align:top;
text-align:left}th{background:#f4f4f4}.num{text-align:right}.charts{display:flex;flex-wrap:wrap;gap:12px}
.ex{font-size:12.5px}.muted{color:#777}.cell0{background:#fff}code{font-size:12px;white-space:pre-wrap;word-break:break-word}"""

_ONERROR = (
    "<script>window.onerror=function(m){document.title='ERROR: '+m;};"
    "document.addEventListener('DOMContentLoaded',function(){document.body.dataset.ready='1';});</script>"
)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"num" if isinstance(c, int | float) else ""}">{_cell(c)}</td>' for c in row)
        + "</tr>"
        for row in rows
    )
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return f"<code>{escape(orjson.dumps(value).decode())}</code>"
    return escape("" if value is None else str(value))


def _distributions(
    pool: list[dict[str, Any]],
    selected: list[dict[str, Any]] | None,
    judges: list[str],
    compare: dict[str, Any] | None,
) -> str:
    charts = []
    for judge in rd.score_judges(pool, judges):
        cmp = (compare or {}).get(judge)
        if cmp and cmp.get("kind") == "scores":  # the compared models side by side
            labels, a = rd.histogram(cmp["scores_a"], judge)
            _, b = rd.histogram(cmp["scores_b"], judge)
            name_a, name_b = cmp["names"]
            charts.append(bar_chart(f"{judge} scores: {name_a} vs {name_b}", labels, {name_a: a, name_b: b}))
            continue
        labels, counts = rd.histogram(rd.scores(pool, judge), judge)
        series = {"pool": counts}
        if selected is not None:
            series["selected"] = rd.histogram(rd.scores(selected, judge), judge)[1]
        charts.append(bar_chart(f"{judge} score distribution", labels, series))
    if not charts:
        return ""
    return '<h2>Score distributions</h2><div class="charts">' + "".join(charts) + "</div>"


def _comparison(compare: dict[str, Any] | None) -> str:
    if not compare:
        return ""
    out = ["<h2>Judge comparison</h2>"]
    for judge, c in compare.items():
        name_a, name_b = c["names"]
        out.append(f"<h3>{escape(judge)}: A = {escape(name_a)}, B = {escape(name_b)}</h3>")
        if c.get("kind") == "tags":
            out.append(
                _table(
                    ["compared", "mean per-row Jaccard", "vocab A", "vocab B", "vocab both", "vocab Jaccard"],
                    [
                        [
                            c["compared"],
                            c["mean_jaccard"],
                            c["vocab_a"],
                            c["vocab_b"],
                            c["vocab_both"],
                            c["vocab_jaccard"],
                        ]
                    ],
                )
            )
            rows = [
                [d["id"], d["text"], ", ".join(d["tags_a"]), ", ".join(d["tags_b"]), d["jaccard"]]
                for d in c["disagreements"]
            ]
            out.append(_table(["id", "instruction", "tags A", "tags B", "Jaccard"], rows, "ex"))
            continue
        out.append(
            _table(
                [
                    "compared",
                    "exact agreement",
                    "Spearman",
                    "Kendall tau-b",
                    "quadratic kappa",
                    "mean A",
                    "mean B",
                ],
                [
                    [
                        c["compared"],
                        c["exact_agreement"],
                        c["spearman"],
                        c["kendall_tau_b"],
                        c["quadratic_kappa"],
                        c["mean_a"],
                        c["mean_b"],
                    ]
                ],
            )
        )
        sel = c.get("selection")
        if sel:
            out.append(
                f"<p>Kept at score &ge; {sel['threshold']:g}: A {sel['kept_a']}, B {sel['kept_b']}, both "
                f"{sel['kept_both']} (Jaccard {_cell(sel['jaccard'])}).</p>"
            )
        labels = c["labels"]
        conf = c["confusion"]
        used = [i for i in range(len(labels)) if any(conf[i]) or any(row[i] for row in conf)]  # bins in use
        matrix = [[f"A {labels[i]}", *(conf[i][j] for j in used)] for i in used]
        out.append(
            '<p class="muted">Confusion of binned scores (rows A, columns B; unused bins left out)</p>'
        )
        out.append(_table(["", *(f"B {labels[j]}" for j in used)], matrix, "ex"))
        rows = [
            [d["id"], d["text"], d["score_a"], d["explanation_a"], d["score_b"], d["explanation_b"]]
            for d in c["disagreements"]
        ]
        out.append('<p class="muted">Largest disagreements</p>')
        out.append(_table(["id", "instruction", "A", "A's explanation", "B", "B's explanation"], rows, "ex"))
    return "".join(out)


def _tags(pool: list[dict[str, Any]], selected: list[dict[str, Any]] | None, top: int = 20) -> str:
    pool_counts = rd.tag_counts(pool)
    if not pool_counts:
        return ""
    names = [t for t, _ in pool_counts.most_common(top)]
    series: dict[str, list[float]] = {"pool": [pool_counts[t] for t in names]}
    if selected is not None:
        sel_counts = rd.tag_counts(selected)
        series["selected"] = [sel_counts[t] for t in names]
    out = [
        '<h2>Tags</h2><div class="charts">',
        bar_chart(f"top {len(names)} tags", names, series, horizontal_labels=False),
    ]
    vocab = set(pool_counts)
    curves = {"pool (file order)": rd.coverage_curve(pool, vocab)}
    if selected is not None:
        curves["selected (selection order)"] = rd.coverage_curve(selected, vocab)
    out.append(line_chart("tag coverage: share of the pool's tags covered", curves, "rows taken", "coverage"))
    out.append(
        f"</div><p>{len(vocab)} distinct tags in the pool"
        + (f", {len(set(rd.tag_counts(selected)))} in the subset" if selected is not None else "")
        + ".</p>"
    )
    return "".join(out)


def _deita(pool: list[dict[str, Any]], selected: list[dict[str, Any]] | None) -> str:
    def pairs(rows: list[dict[str, Any]]) -> list[tuple[float, float]]:
        out = []
        for r in rows:
            c, q = r.get("deita_complexity_score"), r.get("deita_quality_score")
            if isinstance(c, int | float) and isinstance(q, int | float):
                out.append((float(c), float(q)))
        return out

    series = {"pool": pairs(pool)}
    if not series["pool"]:
        return ""
    if selected is not None:
        series["selected"] = pairs(selected)
    scale = scale_for("deita_quality")
    chart = scatter_chart(
        "DEITA complexity vs quality",
        series,
        "complexity",
        "quality",
        (scale[0], scale[1]),
        (scale[0], scale[1]),
    )
    return f'<h2>Complexity and quality</h2><div class="charts">{chart}</div>'


def _examples(
    pool: list[dict[str, Any]], selected: list[dict[str, Any]] | None, judges: list[str], n: int = 5
) -> str:
    if selected is None:
        return ""
    chosen = {rd.row_identity(r) for r in selected}
    rejected = [r for r in pool if rd.row_identity(r) not in chosen]
    cols = [j.replace("-", "_") for j in judges]

    def rows(items: list[dict[str, Any]]) -> list[list[Any]]:
        out = []
        for r in items[:n]:
            judged = "; ".join(f"{j}: {_short(r.get(f'{j}_score', r.get(f'{j}_tags')))}" for j in cols)
            expl = " | ".join(str(r.get(f"{j}_explanation") or "") for j in cols if r.get(f"{j}_explanation"))
            out.append([row_text(r, 200), judged, expl[:400]])
        return out

    header = ["instruction", "judgments", "explanations"]
    failed = {j: sum(r.get(f"{j}_status") != "ok" for r in pool) for j in cols
              if any(f"{j}_status" in r for r in pool)}
    kept_out = ", ".join(f"{j} {n}" for j, n in failed.items() if n)
    failures = (f" Rows a failed judgment kept out of any selection: {escape(kept_out)}." if kept_out
                else " No judgment failed.")
    return (
        f"<h2>Selected and rejected examples</h2><p>{len(selected)} selected of {len(pool)}; "
        f"{len(rejected)} rejected.{failures}</p><h3>Selected</h3>{_table(header, rows(selected), 'ex')}"
        f"<h3>Rejected</h3>{_table(header, rows(rejected), 'ex')}"
    )


def _short(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value[:6])) + ("…" if len(value) > 6 else "")
    return "–" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _failures(pool: list[dict[str, Any]], judges: list[str]) -> str:
    rows = [
        [j, reason, n]
        for j, counter in rd.failures(pool, judges).items()
        for reason, n in counter.most_common()
    ]
    if not rows:
        return "<h2>Failures</h2><p>No judge failed on any row.</p>"
    return "<h2>Failures by reason</h2>" + _table(["judge", "reason", "rows"], rows)


def _costs(cache: Any, judges: list[str], sample_ids: Sequence[str] | None, rows: Sequence[dict[str, Any]],
           keys: Iterable[str] | None, source: str | Path | None) -> str:
    if cache is None:
        return ""
    found = rd.file_records(cache, judges, sample_ids, rows if sample_ids is not None else None, keys, source)
    groups = rd.group_costs(found.records)
    title = "<h2>Tokens, cost and provenance (from the cache)</h2>"
    if not groups:
        return title + '<p class="muted">No cache records for these judges.</p>' + _provenance_note(found)
    table_rows = [
        [
            name,
            g["calls"],
            g["failed"],
            g["prompt_tokens"],
            g["completion_tokens"],
            round(g["cost"], 6),
            ", ".join(g["fingerprints"]),
            ", ".join(g["api_bases"]),
            ", ".join(g["versions"]),
        ]
        for name, g in groups.items()
    ]
    header = [
        "judge / model",
        "calls",
        "failed",
        "input tokens",
        "output tokens",
        "cost $",
        "template hashes",
        "api_base",
        "winnow",
    ]
    return title + _table(header, table_rows) + _provenance_note(found)


def _provenance_note(found: rd.Provenance) -> str:
    """Which records were counted, and which of these rows' records were not: the cache is shared,
    so the reader must see the filter to trust the figures."""
    counted = "".join(f"<li>{escape(b)}</li>" for b in found.basis)
    out = f'<p class="muted">Counted: the calls that made these judgments:</p><ul class="muted">{counted}</ul>'
    if found.left_out:
        skipped = "".join(f"<li>{escape(why)}: {n}</li>" for why, n in found.left_out.most_common())
        out += f'<p class="muted">Not counted (other cached records of these rows):</p><ul class="muted">{skipped}</ul>'
    return out


def write_report(
    pool_rows: Sequence[dict[str, Any]],
    selected_rows: Sequence[dict[str, Any]] | None = None,
    *,
    judges: Sequence[str],
    settings: dict[str, Any],
    cache: Any = None,
    compare: dict[str, Any] | None = None,
    output: str | Path,
    sample_ids: Sequence[str] | None = None,
    title: str = "winnow report",
    samples: Sequence[Any] | None = None,
    trust: Mapping[str, Mapping[str, Any]] | None = None,
    cache_keys: Iterable[str] | None = None,
    judged_file: str | Path | None = None,
) -> Path:
    """Write the report and return its path.

    ``pool_rows``: judged rows (``rate`` output); ``selected_rows``: the subset, in selection
    order; ``judges``: judge names whose columns to show; ``settings``: pipeline settings shown
    verbatim; ``cache``: an open JudgmentCache for tokens, cost and provenance (restricted to
    ``sample_ids`` when given); ``compare``: {judge: ``compare_rows`` report} to show the
    agreement and both models' distributions side by side.  ``samples`` (the pool's, aligned
    with ``pool_rows``) let the trust section measure length bias; ``trust``: {judge: {"agreement":
    ..., "stability": ...}} as ``winnow agree --json`` / ``winnow audit stability --json`` write them.
    ``cache_keys``: the cache keys of the pool's judgments (a run knows them): tokens and cost count
    exactly those records; without them, the records whose judgments agree with the rows (the note
    under the table says which), ties broken by the run that wrote ``judged_file`` (the pool's path).
    """
    from winnow import __version__

    pool, selected = list(pool_rows), (list(selected_rows) if selected_rows is not None else None)
    judge_list = [j.replace("-", "_") for j in judges]
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    summary = f"{len(pool)} rows judged by {', '.join(judge_list) or 'no judge'}"
    if selected is not None:
        summary += f"; {len(selected)} selected"
    parts = [
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>',
        f"<style>{_CSS}</style>{_ONERROR}</head><body>",
        f"<h1>{escape(title)}</h1><p>{escape(summary)}. "
        f"Generated {generated} by winnow {escape(__version__)}.</p>",
        _distributions(pool, selected, judge_list, compare),
        _comparison(compare),
        _tags(pool, selected),
        _deita(pool, selected),
        _examples(pool, selected, judge_list),
        trust_section(samples, judge_list, trust),
        _failures(pool, judge_list),
        _costs(cache, judge_list, sample_ids, pool, cache_keys, judged_file),
        "<h2>Settings</h2>" + _table(["setting", "value"], [[k, v] for k, v in settings.items()]),
        "</body></html>",
    ]
    path = Path(output)
    from winnow.data.writers import write_text

    write_text(path, "\n".join(p for p in parts if p))  # atomic; an OSError is an OutputError, no temp left
    return path
