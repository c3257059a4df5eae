"""``winnow inspect``: the layout winnow detects and why, and what judges will see."""

from __future__ import annotations

from pathlib import Path

import typer

from winnow.cli.app import LAYOUT_HELP, app, parse_pairs, user_errors


@app.command()
def inspect(
    data: Path = typer.Argument(..., help="A data file (JSONL, JSON, CSV, TSV, Parquet) or an HF dataset folder."),
    layout: str | None = typer.Option(None, "--layout", help=LAYOUT_HELP),
    column_map: list[str] | None = typer.Option(None, "--map", help="Column map, as for rate."),
    side: str = typer.Option("chosen", "--side", help="Preference / HH rows: the side shown (chosen, rejected)."),
    rows: int = typer.Option(3, "--rows", min=0, help="How many rows to show as the judges see them."),
) -> None:
    """Show the detected layout and why, the columns, the first rows as judges see them, how many
    rows are valid, which judges can run, and the --map to use when nothing is recognised."""
    from winnow.data.inspect import inspect_file

    with user_errors():
        result = inspect_file(data, layout=layout, column_map=parse_pairs(column_map, "--map") or None, side=side,
                              examples=rows)
    typer.echo("\n".join(result.lines()))
