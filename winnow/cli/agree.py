"""``winnow agree``: a judge's scores against labels you trust, with bootstrap intervals."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer

from winnow.cli.app import app, fail, finite, layout_option, user_errors


def _rows(path: Path) -> list[dict]:
    """Every record of ``path`` as a dict.  A record that cannot be read (bad JSON, a line that
    is not an object) fails the command as it fails select, report and compare: leaving it out
    silently would measure agreement on fewer rows than the user thinks."""
    from winnow.data import DataError
    from winnow.data.readers import read_raw
    from winnow.types import BadRow

    raw = read_raw(path)
    bad: list[BadRow] = []
    for index, value in enumerate(raw.values):
        if isinstance(value, BadRow):
            bad.append(value)
        elif not isinstance(value, dict):
            line = raw.lines[index] if raw.lines and index < len(raw.lines) else None
            bad.append(BadRow(str(path), index, line, None, f"expected an object, got {type(value).__name__}"))
    if bad:
        raise DataError.from_bad_rows(bad)
    return [v for v in raw.values if isinstance(v, dict)]


def resolve_judge_score(columns: list[str], *, judge: str | None, score_column: str | None,
                        user_judge: Path | None, where: str) -> Any:
    """``audit.columns.resolve_score``, but a known judge whose column is missing is said as such
    (``no column alpagasus_score``), not as an unknown judge with itself as the suggestion."""
    from winnow.audit.columns import SIDES, resolve_score
    from winnow.judges.registry import BUILTIN

    if judge is not None and score_column is None and user_judge is None and judge.replace("_", "-") in BUILTIN:
        name = judge.replace("-", "_")
        if not any(c.startswith(tuple(f"{side}{name}_" for side in ("", *SIDES))) for c in columns):
            raise ValueError(f"--judge {judge}: {where} has no {name}_score column (it was not rated with "
                             f"--judge {judge}?; columns: {', '.join(columns) or 'none'}); name the score "
                             "column with --score-column")
    return resolve_score(columns, judge=judge, score_column=score_column, user_judge=user_judge, where=where)


@app.command()
def agree(
    data: Path = typer.Argument(..., help="A judged file (the output of winnow rate)."),
    labels: str = typer.Option(..., "--labels", help="The column holding the labels (or another judge's score)."),
    judge: str | None = typer.Option(None, "--judge", "-j", help="The judge whose <judge>_score is compared "
                                     "(a built-in, a user judge's name, or its judge.yaml / folder)."),
    score_column: str | None = typer.Option(None, "--score-column", help="Or the score column itself."),
    user_judge: Path | None = typer.Option(None, "--user-judge", help="The user judge's judge.yaml (or folder): "
                                           "its score_field and declared score range are used."),
    labels_file: Path | None = typer.Option(None, "--labels-file", help="Labels in a second file, joined by "
                                            "sample id (--id-column, or the content hash of each row)."),
    id_column: str | None = typer.Option(None, "--id-column", help="Column holding the id both files share."),
    threshold: float | None = typer.Option(None, "--threshold", callback=finite("--threshold"),
                                           help="Compare the selections at score >= this."),
    budget: int | None = typer.Option(None, "--budget", min=1, help="Or the top N on each side."),
    label_scale: str | None = typer.Option(None, "--label-scale", help="LO,HI of the labels (default: the judge's "
                                           "scale when every label fits in it, else the labels' observed range)."),
    resamples: int = typer.Option(1000, "--resamples", min=0, help="Bootstrap resamples for the 95% intervals."),
    layout: str | None = layout_option(),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Spearman, Kendall, quadratic kappa, MAE, the confusion matrix and selection precision/recall
    of a judge against labels, each with a bootstrap 95% interval."""
    from winnow.audit.agree import agree_rows, check_label_scale, check_selection
    from winnow.audit.columns import table_columns
    from winnow.audit.trust_files import file_identity

    if judge is None and score_column is None:
        fail("name the judge (--judge alpagasus) or the score column (--score-column), one of them")
    if judge is not None and score_column is not None:
        fail("name the judge (--judge alpagasus) or the score column (--score-column), not both")
    scale = _label_scale(label_scale)
    with user_errors(on_bad_row=False):
        check_label_scale(scale)
        check_selection(threshold, budget)
        rows = _rows(data)  # any table of scores: it need not be instruction data
        resolved = resolve_judge_score(table_columns(rows), judge=judge, score_column=score_column,
                                       user_judge=user_judge, where=str(data))
        aligned: list[Any] | None = None
        numbers: list[int] | None = None
        notes: list[str] = []
        if labels_file is not None:
            rows, aligned, numbers, notes = _joined(data, labels_file, labels, id_column, layout, rows)
        else:
            _check_column(rows, labels, "--labels", str(data))
        judge_scale, source = _judge_scale(resolved, rows)
        result = agree_rows(rows, resolved.column, labels, labels=aligned, label_scale=scale, threshold=threshold,
                            budget=budget, resamples=resamples, judge_scale=judge_scale, scale_source=source,
                            row_numbers=numbers)
        result.notes += notes
        result.provenance = {"data": file_identity(data), "labels_file": str(labels_file) if labels_file else None,
                             "judge": resolved.judge}
    if as_json:
        import orjson

        typer.echo(orjson.dumps(result.__dict__, option=orjson.OPT_INDENT_2).decode())
        return
    typer.echo("\n".join(result.lines()))


def _label_scale(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        fail(f"--label-scale {text!r}: expected LO,HI such as 1,10")
    if not (math.isfinite(low) and math.isfinite(high)):
        fail(f"--label-scale {text!r}: LO and HI must be finite numbers")
    return low, high


def _judge_scale(resolved: Any, rows: list[dict]) -> tuple[tuple[float, float, float], str]:
    """The judge's declared or known scale, on the scores the rows hold (for the step)."""
    from winnow.audit.agree import _number
    from winnow.audit.columns import score_scale

    values = [v for v in (_number(r.get(resolved.column)) for r in rows) if isinstance(v, float)]
    return score_scale(resolved, values)


def _check_column(rows: list[dict], column: str, option: str, where: str) -> None:
    """A column no row has is a typo, not "0 rows with a label": name it and the closest one."""
    from winnow.audit.columns import did_you_mean, table_columns

    columns = table_columns(rows)
    if column not in columns:
        fail(f"{option} {column}: {where} has no such column{did_you_mean(column, columns)} "
             f"(columns: {', '.join(columns)})")


def _joined(data: Path, labels_file: Path, labels: str, id_column: str | None, layout: str | None,
            rows: list[dict]) -> tuple[list[dict], list[Any], list[int], list[str]]:
    """(judged rows, their labels, their row numbers, notes): the labels file joined by
    ``id_column`` or by each row's content hash.  Conflicting duplicate labels are refused (which
    one is right?); label rows that match no judged row are counted and the first few named."""
    from winnow.data import load

    if id_column:
        label_rows = _rows(labels_file)
        _check_column(rows, id_column, "--id-column", str(data))
        _check_column(label_rows, id_column, "--id-column", str(labels_file))
        _check_column(label_rows, labels, "--labels", str(labels_file))
        keys = [str(r.get(id_column)) for r in label_rows]
        judged_keys = [str(r.get(id_column)) for r in rows]
        values = [r.get(labels) for r in label_rows]
        numbers = list(range(1, len(rows) + 1))
    else:
        judged = load(data, layout=layout)
        other = load(labels_file, layout=layout)
        _check_column([s.row for s in other.samples], labels, "--labels", str(labels_file))
        keys = [s.id for s in other.samples]
        values = [s.row.get(labels) for s in other.samples]
        rows = [s.row for s in judged.samples]
        judged_keys = [s.id for s in judged.samples]
        numbers = [s.index + 1 for s in judged.samples]
    by_key = _label_map(labels_file, keys, values, id_column)
    unmatched = [i + 1 for i, k in enumerate(keys) if k not in set(judged_keys)]
    notes = []
    if unmatched:
        first = ", ".join(map(str, unmatched[:5])) + (f" and {len(unmatched) - 5} more" if len(unmatched) > 5 else "")
        notes.append(f"{len(unmatched)} of {len(keys)} rows of {labels_file} match no judged row (joined by "
                     f"{id_column or 'content'}), not used: rows {first}")
    return rows, [by_key.get(k) for k in judged_keys], numbers, notes


def _label_map(labels_file: Path, keys: list[str], values: list[Any], id_column: str | None) -> dict[str, Any]:
    """key -> label; the same sample labelled twice with different labels is an error naming the rows."""
    first: dict[str, int] = {}
    by_key: dict[str, Any] = {}
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        if key in by_key and by_key[key] != value:
            fail(f"{labels_file}: rows {first[key] + 1} and {i + 1} label the same sample "
                 f"({id_column or 'same content'}{'=' + key if id_column else ''}) differently "
                 f"({by_key[key]!r} vs {value!r}): keep one")
        first.setdefault(key, i)
        by_key.setdefault(key, value)
    return by_key
