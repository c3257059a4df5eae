"""``winnow select``: build the subset from a judged file."""

from __future__ import annotations

from pathlib import Path

import typer

from winnow.cli.app import app, check_output, err, fail, layout_option, parse_pairs, user_errors
from winnow.selection import ALPAGASUS_MIN_SCORE, DEFAULT_TAGS_COLUMN, DEFAULT_THRESHOLD


def _similarity(value: float) -> float:
    """``--threshold``'s callback: a cosine similarity lies in [-1, 1]; 2 would accept every row
    and -1.5 none, silently, and NaN compares false with everything."""
    if not -1.0 <= value <= 1.0:  # NaN fails this too
        fail(f"--threshold {value}: a cosine similarity, between -1 and 1 (DEITA uses {DEFAULT_THRESHOLD})")
    return value


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
        None, "--min-score", help="Keep rows with score >= this (inclusive), before any count (threshold, deita). "
        f"Default for threshold with no count: {ALPAGASUS_MIN_SCORE:g} (AlpaGasus); deita: none."
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
    api_key: str | None = typer.Option(None, "--api-key", help="API key for --embed-model (default: the provider's "
                                       "env variable); never written to the output or the cache."),
    threshold: float = typer.Option(
        DEFAULT_THRESHOLD, "--threshold", callback=_similarity,
        help="deita: max cosine similarity to the selected set, in [-1, 1].",
    ),
    keep_order: bool = typer.Option(False, "--keep-order", help="Write rows in their original order."),
    column_map: list[str] | None = typer.Option(None, "--map", help="Column map, as for rate."),
    layout: str | None = layout_option(),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", envvar="WINNOW_CACHE_DIR", help="Cache folder."),
) -> None:
    """Select a subset: AlpaGasus threshold, InsTag diverse sampling or DEITA score-first diversity.

    An option the chosen method does not read is an error.  --min-score applies first; a
    count (--top-k, --top-frac or --budget) then limits the rows that pass it.  The output's
    folder must exist, and the output must not be the input file.
    """
    from winnow.selection import select as select_api

    check_output(output, inputs=[data], rows=True)  # before the work: an embedding model may be paid for
    if api_key and not embed_model:
        fail("--api-key is the key for --embed-model; give --embed-model or drop --api-key")
    with user_errors(on_bad_row=False):
        result = select_api(
            data, method, output=output, budget=budget, score_column=score_column, min_score=min_score,
            top_k=top_k, top_frac=top_frac, tags_column=tags_column, embedding_column=embedding_column,
            embed_model=embed_model, api_base=api_base, api_key=api_key, threshold=threshold, keep_order=keep_order,
            column_map=parse_pairs(column_map, "--map") or None, cache_dir=cache_dir, layout=layout,
        )
    err(f"selected {len(result.rows)} of {result.pool_size} rows with {result.method}")
    for key, value in result.details.items():
        err(f"  {key}: {value}")
    for note in result.notes:
        err(f"  note: {note}")
    err(f"  wrote {result.output}")
