"""``winnow select``: build the subset from a judged file."""

from __future__ import annotations

from pathlib import Path

import typer

from winnow.cli.app import LAYOUT_HELP, app, err, fail, parse_pairs
from winnow.selection import DEFAULT_TAGS_COLUMN, DEFAULT_THRESHOLD


@app.command()
def select(
    data: Path = typer.Argument(..., help="A judged file (the output of winnow rate)."),
    method: str = typer.Option("threshold", "--method", help="threshold (AlpaGasus / top-k), instag or deita."),
    output: Path = typer.Option(..., "-o", "--output", help="Subset file; format from its suffix."),
    budget: int | None = typer.Option(
        None, "--budget", "-n", min=0, help="How many rows to select (threshold: same as --top-k)."
    ),
    score_column: str | None = typer.Option(
        None, "--score-column", help="Score column to rank or threshold (threshold, deita)."
    ),
    min_score: float | None = typer.Option(
        None, "--min-score", help="Keep rows with score >= this (inclusive), before any count (threshold, deita)."
    ),
    top_k: int | None = typer.Option(None, "--top-k", min=0, help="threshold: keep the K best-scored rows."),
    top_frac: float | None = typer.Option(
        None, "--top-frac", min=0.0, max=1.0, help="threshold: keep this fraction of the file, best first."
    ),
    tags_column: str = typer.Option(
        DEFAULT_TAGS_COLUMN, "--tags-column", help="Column with each row's tag list (instag; deita's default vectors)."
    ),
    embedding_column: str | None = typer.Option(None, "--embedding-column", help="Precomputed vectors (deita)."),
    embed_model: str | None = typer.Option(None, "--embed-model", help="Embedding model via litellm (deita)."),
    api_base: str | None = typer.Option(None, "--api-base", help="Base URL for --embed-model."),
    threshold: float = typer.Option(
        DEFAULT_THRESHOLD, "--threshold", help="deita: max cosine similarity to the selected set."
    ),
    keep_order: bool = typer.Option(False, "--keep-order", help="Write rows in their original order."),
    column_map: list[str] | None = typer.Option(None, "--map", help="Column map, as for rate."),
    layout: str | None = typer.Option(None, "--layout", help=LAYOUT_HELP),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", envvar="WINNOW_CACHE_DIR", help="Cache folder."),
) -> None:
    """Select a subset: AlpaGasus threshold, InsTag diverse sampling or DEITA score-first diversity.

    An option the chosen method does not read is an error.  --min-score applies first; a
    count (--top-k, --top-frac or --budget) then limits the rows that pass it.
    """
    from winnow.data import DataError
    from winnow.selection import select as select_api

    try:
        result = select_api(
            data, method, output=output, budget=budget, score_column=score_column, min_score=min_score,
            top_k=top_k, top_frac=top_frac, tags_column=tags_column, embedding_column=embedding_column,
            embed_model=embed_model, api_base=api_base, threshold=threshold, keep_order=keep_order,
            column_map=parse_pairs(column_map, "--map") or None, cache_dir=cache_dir, layout=layout,
        )
    except (DataError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    err(f"selected {len(result.rows)} of {result.pool_size} rows with {result.method}")
    for key, value in result.details.items():
        err(f"  {key}: {value}")
    for note in result.notes:
        err(f"  note: {note}")
    err(f"  wrote {result.output}")
