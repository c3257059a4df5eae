"""``winnow tags normalize``: canonical InsTag tags and a readable tag map."""

from __future__ import annotations

from pathlib import Path

import typer

from winnow.cli.app import app, check_output, err, fail, layout_option, parse_pairs, user_errors

tags_app = typer.Typer(help="Work with InsTag tags.", no_args_is_help=True)
app.add_typer(tags_app, name="tags")


def _count(flag: str, value: str) -> int | str | None:
    """``--alpha`` / ``--min-support`` through the selector's own parser (one rule for the CLI,
    a pipeline file and Python), refused as a bad parameter of ``flag``."""
    from winnow.selectors.tags import parse_alpha, parse_min_support

    parse = parse_alpha if flag == "--alpha" else parse_min_support
    try:
        return parse(value)
    except ValueError:
        words = "auto / off" if flag == "--alpha" else "auto"
        raise typer.BadParameter(f"{value!r}: give a whole count of at least 1, or {words}",
                                 param_hint=flag) from None


def _eps(value: float) -> float:
    """``--eps``: a cosine-distance radius lies in (0, 2]; 0, a negative or NaN merges nothing (or
    fails inside DBSCAN with a traceback), above 2 merges everything."""
    if not 0.0 < value <= 2.0:  # NaN fails this too
        fail(f"--eps {value}: a cosine-distance radius, above 0 and at most 2 (InsTag uses 0.05)")
    return value


def _confidence(value: float) -> float:
    """``--min-confidence``: a rule's confidence is a share, in (0, 1]."""
    if not 0.0 < value <= 1.0:  # NaN fails this too
        fail(f"--min-confidence {value}: a share, above 0 and at most 1 (InsTag uses 0.99)")
    return value


@tags_app.command("normalize")
def normalize(
    data: Path = typer.Argument(..., help="A tagged file (rated with --judge instag)."),
    output: Path = typer.Option(..., "-o", "--output", help="Where to write rows with normalised tags."),
    tags_column: str = typer.Option("instag_tags", "--tags-column", help="Column holding each row's tag list."),
    alpha: str = typer.Option("auto", "--alpha", help="Frequency filter: min count, 'auto' (scaled) or 'off'."),
    no_rule: bool = typer.Option(False, "--no-rule", help="Skip rule aggregation (lower-case, symbols, stems)."),
    embed_model: str | None = typer.Option(None, "--embed-model", help="Semantic aggregation with this model."),
    api_base: str | None = typer.Option(None, "--api-base", help="Base URL for --embed-model."),
    api_key: str | None = typer.Option(None, "--api-key", help="API key for --embed-model (default: the provider's "
                                       "env variable); never written to the output or the cache."),
    eps: float = typer.Option(0.05, "--eps", callback=_eps,
                              help="DBSCAN cosine-distance radius, in (0, 2] (docs/methods.md P-I3)."),
    no_association: bool = typer.Option(False, "--no-association", help="Skip FP-Growth association merging."),
    min_support: str = typer.Option("auto", "--min-support", help="Association rules: min count or 'auto'."),
    min_confidence: float = typer.Option(0.99, "--min-confidence", callback=_confidence,
                                         help="Association rules: min confidence, in (0, 1]."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", envvar="WINNOW_CACHE_DIR",
                                          help="Cache folder (embeddings are cached like judgments)."),
    layout: str | None = layout_option(),
    column_map: list[str] | None = typer.Option(None, "--map", help="Column map, as for rate."),
) -> None:
    """Normalise tags as InsTag does: frequency, rule, semantic and association aggregation.

    The output may be the input (it keeps every column and adds the judge's tags as
    <column>_raw); its folder must exist, and the tag map beside it must be writable too."""
    from winnow.tagging import normalize as normalize_api
    from winnow.tagging import tag_map_path

    check_output(output, rows=True)  # before the work: an embedding model may be paid for
    check_output(tag_map_path(output), inputs=[data], option="the tag map")
    if (api_key or api_base) and not embed_model:
        fail(f"{'--api-key' if api_key else '--api-base'} serves --embed-model; give --embed-model or drop it")
    with user_errors(on_bad_row=False):
        result = normalize_api(
            data, output=output, tags_column=tags_column, alpha=_count("--alpha", alpha),
            rule=not no_rule, embed_model=embed_model, api_base=api_base, api_key=api_key, eps=eps,
            association=not no_association,
            min_support=_count("--min-support", min_support),  # type: ignore[arg-type]
            min_confidence=min_confidence, cache_dir=cache_dir, layout=layout,
            column_map=parse_pairs(column_map, "--map") or None,
        )
    err("vocabulary size after each step: " + " -> ".join(f"{step} {n}" for step, n in result.vocab_sizes))
    if result.from_raw:
        err(f"  {data} was normalised before: started again from the judge's tags in {tags_column}_raw")
    alpha_note = "off" if result.alpha is None else result.alpha
    support_note = "off (--no-association)" if no_association else result.min_support
    err(f"  alpha {alpha_note}, min support {support_note}")
    err(f"  wrote {result.output} and the tag map {result.tag_map_path}")
