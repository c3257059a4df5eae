"""``winnow rate``: judge every row of a dataset file."""

from __future__ import annotations

from pathlib import Path

import typer

from winnow.cli.app import LAYOUT_HELP, app, coerce, err, fail, parse_pairs, resume_command, user_errors


def ray_engine(engine: str, address: str | None, actors: int, in_flight: int) -> object:
    """``--engine``: None for this process, ``RayOptions`` for a Ray cluster."""
    if engine == "local":
        return None
    if engine != "ray":
        fail(f"--engine {engine!r}: use local or ray")
    from winnow.engine.ray_engine import RayOptions

    return RayOptions(address=address, actors=actors, in_flight_per_actor=in_flight)


@app.command()
def rate(
    data: Path = typer.Argument(..., help="Dataset file (JSONL, JSON, CSV, Parquet) or HF save_to_disk folder."),
    judge: list[str] = typer.Option(..., "--judge", "-j", help="Judge name or path to judge.yaml/folder; repeatable."),
    model: str = typer.Option(..., "--model", "-m", help="litellm model string, e.g. openai/gpt-4o-mini, or 'local'."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Output file; format from its suffix."),
    api_base: list[str] | None = typer.Option(None, "--api-base", help="Base URL of an OpenAI-compatible server; "
                                              "repeat it for several servers of one model (spread by load)."),
    api_key: str | None = typer.Option(None, "--api-key", help="API key (default: provider's env variable)."),
    judge_model: list[str] | None = typer.Option(None, "--judge-model", help="JUDGE=MODEL: a model per judge."),
    judge_option: list[str] | None = typer.Option(None, "--judge-option", help="KEY=VALUE option for judges."),
    mode: str | None = typer.Option(None, "--mode", help="DEITA scoring mode: direct, evol or scorer."),
    dimension: str | None = typer.Option(None, "--dimension", help="AlpaGasus dimension (default accuracy)."),
    structured: bool | None = typer.Option(None, "--structured/--no-structured", help="Request JSON-schema output."),
    transport: str = typer.Option("auto", "--transport", help="auto, fast or litellm."),
    concurrency: int = typer.Option(32, "--concurrency", "-c", min=1, help="Requests in flight at most."),
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds per request."),
    max_retries: int = typer.Option(6, "--max-retries", min=0, help="Retries of 429/5xx/timeouts per request."),
    rpm: float | None = typer.Option(None, "--rpm", help="Requests per minute, per model and api_base."),
    tpm: float | None = typer.Option(None, "--tpm", help="Tokens per minute, per model and api_base."),
    max_cost: float | None = typer.Option(None, "--max-cost", help="Stop sending once this run spent DOLLARS."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Re-ask judgments cached as judge_failed."),
    on_bad_row: str = typer.Option("fail", "--on-bad-row", help="fail: stop at a bad row; skip: skip and report."),
    column_map: list[str] | None = typer.Option(None, "--map", help="Column map: instruction=question,output=answer."),
    id_column: str | None = typer.Option(None, "--id-column", help="Column holding a stable row id."),
    layout: str | None = typer.Option(None, "--layout", help=LAYOUT_HELP),
    side: str = typer.Option("chosen", "--side", help="Preference / HH rows: judge the chosen, rejected or both "
                             "responses (both: chosen_* and rejected_* columns)."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", envvar="WINNOW_CACHE_DIR", help="Cache folder."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the cache."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress line."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Estimate calls, tokens and cost; send nothing."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Rate only the first N rows (a trial)."),
    batch: bool = typer.Option(False, "--batch", help="Send through the provider's batch API (half the price, "
                               "within 24 h); same judgments, same cache."),
    detach: bool = typer.Option(False, "--detach", help="Submit through the batch API (implies --batch), print "
                                "the job id and exit."),
    poll_seconds: float = typer.Option(30.0, "--poll-seconds", help="With --batch: seconds between status checks."),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray (actors on a Ray cluster)."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Join this Ray cluster (default: a local "
                                           "Ray on loopback for the run)."),
    ray_actors: int = typer.Option(2, "--ray-actors", min=1, help="Ray actors answering calls."),
    ray_in_flight: int = typer.Option(64, "--ray-in-flight", min=1, help="Requests in flight per Ray actor."),
) -> None:
    """Rate every row with the given judges; re-runs are served from the cache."""
    from winnow.api import rate as rate_api
    from winnow.engine import EngineSettings

    if on_bad_row not in ("fail", "skip"):
        fail("--on-bad-row must be fail or skip")
    bases = list(dict.fromkeys(api_base or [])) or None  # several: one model's servers, spread by load
    first_base = bases[0] if bases else None
    if (batch or detach) and bases and len(bases) > 1:
        fail("--batch sends to one provider: give one --api-base")
    options = {k: coerce(v) for k, v in parse_pairs(judge_option, "--judge-option").items()}
    if mode:
        options["mode"] = mode
    if dimension:
        options["dimension"] = dimension
    if max_cost is not None and max_cost <= 0:
        fail(f"--max-cost must be more than 0 dollars (got {max_cost:g}): at 0 nothing would ever be sent")
    try:
        settings = EngineSettings(
            concurrency=concurrency, timeout=timeout, max_retries=max_retries, rpm=rpm, tpm=tpm,
            max_cost=max_cost, retry_failed=retry_failed,
        )
    except ValueError as exc:
        fail(str(exc))
    if dry_run:
        from winnow.audit.costs import estimate, format_estimate

        with user_errors():
            est = estimate(
                data, judge, model, api_base=first_base, judge_models=parse_pairs(judge_model, "--judge-model"),
                judge_options=options, structured=structured, cache_dir=cache_dir, use_cache=not no_cache,
                on_bad_row=on_bad_row, layout=layout, column_map=parse_pairs(column_map, "--map") or None,
                id_column=id_column, settings=settings, batch=batch,
            )
        typer.echo(format_estimate(est))
        return
    if batch or detach:
        from winnow.cli.batch import run_batch

        run_batch({
            "data": str(data), "judges": list(judge), "model": model, "output": str(output) if output else None,
            "api_base": first_base, "judge_models": parse_pairs(judge_model, "--judge-model") or None,
            "judge_options": options or None, "structured": structured, "on_bad_row": on_bad_row, "layout": layout,
            "column_map": parse_pairs(column_map, "--map") or None, "id_column": id_column, "side": side,
            "limit": limit, "max_cost": max_cost, "retry_failed": retry_failed,
        }, cache_dir=cache_dir, detach=detach, poll_seconds=poll_seconds, api_key=api_key, quiet=quiet,
            no_cache=no_cache)
        return
    with user_errors():
        result = rate_api(
            data, judge, model, output=output, api_base=bases, api_key=api_key,
            judge_models=parse_pairs(judge_model, "--judge-model"), judge_options=options,
            transport=transport, structured=structured, cache_dir=cache_dir, use_cache=not no_cache,
            on_bad_row=on_bad_row, layout=layout, column_map=parse_pairs(column_map, "--map") or None,
            id_column=id_column, settings=settings, progress=not quiet, limit=limit, side=side,
            engine=ray_engine(engine, ray_address, ray_actors, ray_in_flight),
        )
    from winnow.cli.summary import nothing_judged, print_summary

    print_summary(result)
    if nothing_judged(result):
        err("no row got a judgment: every one is judge_failed (the reasons are above)")
        raise typer.Exit(1)
    if output is None and no_cache:
        err("no -o given and --no-cache: these judgments were not kept anywhere")
    elif output is None:
        err("no -o given, so no file was written: the judgments are cached, and the same command with "
            "-o FILE writes them without sending anything")
    if result.stats.stopped:
        err(f"stopped early ({result.stats.stopped}); resume with:\n  {resume_command()}")
