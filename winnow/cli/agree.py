"""``winnow agree``: a judge's scores against labels you trust, with bootstrap intervals."""

from __future__ import annotations

from pathlib import Path

import typer

from winnow.cli.app import LAYOUT_HELP, app, fail, user_errors


def _rows(path: Path) -> list[dict]:
    from winnow.data.readers import read_raw

    return [v for v in read_raw(path).values if isinstance(v, dict)]


@app.command()
def agree(
    data: Path = typer.Argument(..., help="A judged file (the output of winnow rate)."),
    labels: str = typer.Option(..., "--labels", help="The column holding the labels (or another judge's score)."),
    judge: str | None = typer.Option(None, "--judge", "-j", help="The judge whose <judge>_score is compared."),
    score_column: str | None = typer.Option(None, "--score-column", help="Or the score column itself."),
    labels_file: Path | None = typer.Option(None, "--labels-file", help="Labels in a second file, joined by "
                                            "sample id (--id-column, or the content hash of each row)."),
    id_column: str | None = typer.Option(None, "--id-column", help="Column holding the id both files share."),
    threshold: float | None = typer.Option(None, "--threshold", help="Compare the selections at score >= this."),
    budget: int | None = typer.Option(None, "--budget", min=1, help="Or the top N on each side."),
    label_scale: str | None = typer.Option(None, "--label-scale", help="LO,HI of the labels (default: observed)."),
    resamples: int = typer.Option(1000, "--resamples", min=0, help="Bootstrap resamples for the 95% intervals."),
    layout: str | None = typer.Option(None, "--layout", help=LAYOUT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Spearman, Kendall, quadratic kappa, MAE, the confusion matrix and selection precision/recall
    of a judge against labels, each with a bootstrap 95% interval."""
    from winnow.audit.agree import agree_rows
    from winnow.data import load

    if (judge is None) == (score_column is None):
        fail("name the judge (--judge alpagasus) or the score column (--score-column), one of them")
    column = score_column or f"{judge.replace('-', '_')}_score"  # type: ignore[union-attr]
    scale = None
    if label_scale:
        try:
            low, high = (float(v) for v in label_scale.split(","))
        except ValueError:
            fail(f"--label-scale {label_scale!r}: expected LO,HI such as 1,10")
        scale = (low, high)
    with user_errors():
        rows = _rows(data)  # any table of scores: it need not be instruction data
        aligned = None
        if labels_file is not None and id_column:
            by_value = {str(r.get(id_column)): r.get(labels) for r in _rows(labels_file)}
            aligned = [by_value.get(str(r.get(id_column))) for r in rows]
        elif labels_file is not None:  # joined by the content hash of each row's sample
            judged = load(data, layout=layout)
            other = load(labels_file, layout=layout)
            by_id = {s.id: s.row.get(labels) for s in other.samples}
            rows = [s.row for s in judged.samples]
            aligned = [by_id.get(s.id) for s in judged.samples]
        result = agree_rows(rows, column, labels, labels=aligned, label_scale=scale, threshold=threshold,
                            budget=budget, resamples=resamples)
    if as_json:
        import orjson

        typer.echo(orjson.dumps(result.__dict__, option=orjson.OPT_INDENT_2).decode())
        return
    typer.echo("\n".join(result.lines()))
