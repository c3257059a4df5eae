"""``winnow audit bias|stability``: can this judge be trusted? (``agree`` compares with labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from winnow.cli.app import app, coerce, err, fail, finite, parse_pairs, user_errors

audit_app = typer.Typer(help="Judge audits: bias (what scores move with), stability (judge again).",
                        no_args_is_help=True, add_completion=False, rich_markup_mode=None)
app.add_typer(audit_app, name="audit")


@audit_app.command("bias")
def bias(
    data: Path = typer.Argument(..., help="A judged file (the output of winnow rate)."),
    judge: str | None = typer.Option(None, "--judge", "-j", help="The judge whose scores are audited (a built-in, "
                                     "a user judge's name, or its judge.yaml / folder)."),
    score_column: str | None = typer.Option(None, "--score-column", help="Or the score column itself."),
    user_judge: Path | None = typer.Option(None, "--user-judge", help="The user judge's judge.yaml (or folder): "
                                           "its score_field is read."),
    source_column: str | None = typer.Option(None, "--source-column", help="Column naming the model that wrote "
                                             "each response: mean score per source (self-preference)."),
    resamples: int = typer.Option(1000, "--resamples", min=0, help="Bootstrap resamples for the 95% intervals."),
    judge_model: str | None = typer.Option(None, "--judge-model", help="The judge's model: sources of its "
                                           "family are marked (self-preference)."),
) -> None:
    """Score against response length, instruction length, turns and row position; by source model."""
    from winnow.audit.bias import bias_report
    from winnow.audit.columns import table_columns
    from winnow.cli.agree import resolve_judge_score
    from winnow.data import load

    if (judge is None) == (score_column is None):
        fail("name the judge (--judge alpagasus) or the score column (--score-column), one of them")
    with user_errors(on_bad_row=False):
        samples = load(data).samples
        resolved = resolve_judge_score(table_columns([s.row for s in samples]), judge=judge,
                                       score_column=score_column, user_judge=user_judge, where=str(data))
        report = bias_report(samples, resolved.judge, score_column=resolved.column, source_column=source_column,
                             resamples=resamples, judge_model=judge_model, status_column=resolved.status_column)
    typer.echo("\n".join(report.lines()))


@audit_app.command("stability")
def stability(
    data: Path = typer.Argument(..., help="A judged file (the output of winnow rate)."),
    judge: str = typer.Option(..., "--judge", "-j", help="The judge to ask again."),
    model: str = typer.Option(..., "--model", "-m", help="The judge's model, as for rate."),
    api_base: str | None = typer.Option(None, "--api-base", help="Base URL of an OpenAI-compatible server."),
    api_key: str | None = typer.Option(None, "--api-key", help="API key (default: the provider's env variable)."),
    judge_option: list[str] | None = typer.Option(None, "--judge-option", help="KEY=VALUE, as for rate."),
    sample: int = typer.Option(200, "--sample", min=1, help="Rows to judge again (a seeded random sample)."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="How many times each."),
    threshold: float | None = typer.Option(None, "--threshold", callback=finite("--threshold"),
                                           help="Selection threshold (AlpaGasus: 4.5)."),
    temperature: float | None = typer.Option(None, "--temperature", help="Default: the judge's own (0)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the row sample (the same seed picks the same rows)."),
    concurrency: int = typer.Option(32, "--concurrency", "-c", min=1, help="Requests in flight at most."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", envvar="WINNOW_CACHE_DIR", help="Cache folder."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Price it; send nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (for winnow report --trust)."),
    unconfirmed_original: bool = typer.Option(False, "--unconfirmed-original", help="Compare with the file's "
                                              "scores even when the cache confirms none of them as this judge's "
                                              "and model's (a warning is kept in the output)."),
) -> None:
    """Judge a sample again: test-retest agreement, per-row spread, and the share of the selected
    rows that stay selected, with bootstrap 95% intervals.  Repeats are cached."""
    from winnow.engine import EngineSettings

    options = {k: coerce(v) for k, v in parse_pairs(judge_option, "--judge-option").items()}
    if dry_run:
        _dry_run(data, judge, model, sample=sample, repeats=repeats, temperature=temperature, api_base=api_base,
                 judge_options=options, cache_dir=cache_dir, seed=seed)
        return
    from winnow.audit.stability import stability as stability_api

    with user_errors(on_bad_row=False):
        report = stability_api(data, judge, model, sample=sample, repeats=repeats, threshold=threshold,
                               temperature=temperature, api_base=api_base, api_key=api_key, judge_options=options,
                               cache_dir=cache_dir, settings=EngineSettings(concurrency=concurrency), seed=seed,
                               unconfirmed_ok=unconfirmed_original)
    if report.sampled == 0:
        fail("no row to judge again")
    for warning in report.warnings:
        err(f"warning: {warning}")
    if as_json:
        import orjson

        typer.echo(orjson.dumps(report.__dict__, option=orjson.OPT_INDENT_2).decode())
        return
    typer.echo("\n".join(report.lines()))


def _dry_run(data: Path, judge: str, model: str, **kw: Any) -> None:
    """Price the audit as it would run now: the repeats already cached cost nothing (as in
    ``rate --dry-run``), and replies are priced at the mean of cached ones, not ``max_tokens``."""
    from winnow.audit.stability import estimate_stability

    with user_errors(on_bad_row=False):
        est = estimate_stability(data, judge, model, **kw)
    cached = sum(j.cached_samples for j in est.judges)
    asked = sum(j.samples for j in est.judges)
    priced = all(j.price_in or j.price_out for j in est.judges if j.calls)
    money = f"~${est.cost:.4f}" if priced else "cost unknown (no listed price)"
    lines = [f"dry run: {est.calls} calls ({est.rows} rows x {kw['repeats']} repeats); {cached} of {asked} "
             f"repeat judgments already cached; ~{est.input_tokens:,} input + ~{est.output_tokens:,} output "
             f"tokens, {money}; nothing was sent"]
    if est.cache_note:
        lines.append(f"  {est.cache_note}")
    if est.judges:
        first = est.judges[0]
        lines.append(f"  input tokens: {first.input_basis}; output tokens: {first.output_basis}")
    typer.echo("\n".join(lines))
