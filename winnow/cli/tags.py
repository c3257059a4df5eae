"""``winnow tags normalize``: canonical InsTag tags and a readable tag map."""

from __future__ import annotations

from pathlib import Path

import typer

from winnow.cli.app import LAYOUT_HELP, app, err, fail, parse_pairs

tags_app = typer.Typer(help="Work with InsTag tags.", no_args_is_help=True)
app.add_typer(tags_app, name="tags")


def _alpha(value: str) -> int | str | None:
    if value in ("auto", "off", "none"):
        return None if value != "auto" else "auto"
    return int(value)


@tags_app.command("normalize")
def normalize(
    data: Path = typer.Argument(..., help="A tagged file (rated with --judge instag)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write rows with normalised tags."),
    tags_column: str = typer.Option("instag_tags", "--tags-column"),
    alpha: str = typer.Option("auto", "--alpha", help="Frequency filter: min count, 'auto' (scaled) or 'off'."),
    no_rule: bool = typer.Option(False, "--no-rule", help="Skip rule aggregation (lower-case, symbols, stems)."),
    embed_model: str | None = typer.Option(None, "--embed-model", help="Semantic aggregation with this model."),
    api_base: str | None = typer.Option(None, "--api-base"),
    eps: float = typer.Option(0.05, "--eps", help="DBSCAN cosine-distance radius (methods.md P-I3)."),
    no_association: bool = typer.Option(False, "--no-association", help="Skip FP-Growth association merging."),
    min_support: str = typer.Option("auto", "--min-support", help="Association rules: min count or 'auto'."),
    min_confidence: float = typer.Option(0.99, "--min-confidence"),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", envvar="WINNOW_CACHE_DIR"),
    layout: str | None = typer.Option(None, "--layout", help=LAYOUT_HELP),
    column_map: list[str] | None = typer.Option(None, "--map", help="Column map, as for rate."),
) -> None:
    """Normalise tags as InsTag does: frequency, rule, semantic and association aggregation."""
    from winnow.data import DataError
    from winnow.tagging import normalize as normalize_api

    try:
        result = normalize_api(
            data, output=output, tags_column=tags_column, alpha=_alpha(alpha), rule=not no_rule,
            embed_model=embed_model, api_base=api_base, eps=eps, association=not no_association,
            min_support=min_support if min_support == "auto" else int(min_support),
            min_confidence=min_confidence, cache_dir=cache_dir, layout=layout,
            column_map=parse_pairs(column_map, "--map") or None,
        )
    except (DataError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    err("vocabulary size after each step: " + " -> ".join(f"{step} {n}" for step, n in result.vocab_sizes))
    err(f"  alpha {result.alpha}, min support {result.min_support}")
    err(f"  wrote {result.output} and the tag map {result.tag_map_path}")
