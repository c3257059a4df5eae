"""``winnow inspect``: the layout winnow detects and why, and what judges will see."""

from __future__ import annotations

from pathlib import Path

import typer

from winnow.cli.app import app, layout_option, parse_pairs, user_errors


@app.command()
def inspect(
    data: Path = typer.Argument(..., help="A data file (JSONL, JSON, CSV, TSV, Parquet) or an HF dataset folder."),
    layout: str | None = layout_option(),
    column_map: list[str] | None = typer.Option(None, "--map", help="Column map, as for rate."),
    side: str = typer.Option("chosen", "--side", help="Preference / HH rows: the side shown (chosen, rejected)."),
    rows: int = typer.Option(3, "--rows", min=0, help="How many rows to show as the judges see them."),
) -> None:
    """Show the detected layout and why, the columns, the first rows as judges see them, how many
    rows are valid, which judges can run, and the --map to use when nothing is recognised."""
    from winnow.data.inspect import inspect_file

    with user_errors(on_bad_row=False):
        result = inspect_file(data, layout=layout, column_map=parse_pairs(column_map, "--map") or None, side=side,
                              examples=rows)
    if not result.columns and not result.records:
        result.columns = _header_columns(data, result.format)
    typer.echo("\n".join(result.lines()))


def _header_columns(path: Path, fmt: str) -> list[str]:
    """A CSV / TSV with a header and no rows still names its columns; "columns: (none)" would say
    the header was not read.  Anything unreadable here gives no columns (the reader said why)."""
    import csv

    if fmt not in ("csv", "tsv") or not path.is_file():
        return []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh, delimiter="\t" if fmt == "tsv" else ","), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return [name for name in header if name.strip()]
