"""``winnow tags normalize``: canonical InsTag tags and a readable tag map."""

from __future__ import annotations

from pathlib import Path

import typer

from winnow.cli.app import LAYOUT_HELP, app, err, fail, parse_pairs

tags_app = typer.Typer(help="Work with InsTag tags.", no_args_is_help=True)
app.add_typer(tags_app, name="tags")


def _count(flag: str, value: str, words: tuple[str, ...]) -> int | str | None:
    """``--alpha`` / ``--min-support``: a whole count of at least 1, or one of ``words``."""
    if value in words:
        return None if value in ("off", "none") else value
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise typer.BadParameter(f"{value!r}: give a whole count of at least 1, or {' / '.join(words[:2])}",
                                 param_hint=flag)
    return count


@tags_app.command("normalize")
def normalize(
    data: Path = typer.Argument(..., help="A tagged file (rated with --judge instag)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write rows with normalised tags."),
    tags_column: str = typer.Option("instag_tags", "--tags-column"),
    alpha: str = typer.Option("auto", "--alpha", help="Frequency filter: min count, 'auto' (scaled) or 'off'."),
    no_rule: bool = typer.Option(False, "--no-rule", help="Skip rule aggregation (lower-case, symbols, stems)."),
    embed_model: str | None = typer.Option(None, "--embed-model", help="Semantic aggregation with this model."),
    api_base: str | None = typer.Option(None, "--api-base"),
    eps: float = typer.Option(0.05, "--eps", help="DBSCAN cosine-distance radius (docs/methods.md P-I3)."),
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
            data, output=output, tags_column=tags_column, alpha=_count("--alpha", alpha, ("auto", "off", "none")),
            rule=not no_rule, embed_model=embed_model, api_base=api_base, eps=eps, association=not no_association,
            min_support=_count("--min-support", min_support, ("auto",)),  # type: ignore[arg-type]
            min_confidence=min_confidence, cache_dir=cache_dir, layout=layout,
            column_map=parse_pairs(column_map, "--map") or None,
        )
    except (DataError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    err("vocabulary size after each step: " + " -> ".join(f"{step} {n}" for step, n in result.vocab_sizes))
    if result.from_raw:
        err(f"  {data} was normalised before: started again from the judge's tags in {tags_column}_raw")
    alpha_note = "off" if result.alpha is None else result.alpha
    support_note = "off (--no-association)" if no_association else result.min_support
    err(f"  alpha {alpha_note}, min support {support_note}")
    err(f"  wrote {result.output} and the tag map {result.tag_map_path}")
