"""``winnow run pipeline.yaml``: the whole rate -> tag -> score -> select flow."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from winnow.cli.app import LAYOUT_HELP, app, err, fail, resume_command, user_errors

if TYPE_CHECKING:
    from winnow.pipeline import Pipeline


@app.command()
def run(
    pipeline: Path = typer.Argument(..., help="A pipeline YAML file (see examples/)."),
    model: str | None = typer.Option(None, "--model", "-m", help="Judge with this model: the pipeline's `model` "
                                     "and every judge's own."),
    api_base: str | None = typer.Option(None, "--api-base", help="Override the pipeline's api_base."),
    api_key: str | None = typer.Option(None, "--api-key", help="API key (default: the provider's environment "
                                       "variable); never written to the cache, logs or outputs."),
    output_dir: Path | None = typer.Option(None, "--output-dir", help="Override outputs.dir (relative to the "
                                             "current folder, unlike outputs.dir in the file)."),
    # no envvar here: WINNOW_CACHE_DIR must not override the file's cache_dir (it is the default
    # below the file's key, applied by the cache itself)
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Cache folder (default: the file's cache_dir, "
                                          "else WINNOW_CACHE_DIR, else ~/.cache/winnow)."),
    transport: str | None = typer.Option(None, "--transport", help="auto, fast or litellm."),
    max_cost: float | None = typer.Option(None, "--max-cost", help="Stop sending once this run spent DOLLARS."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress line."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Estimate calls, tokens and cost; send nothing."),
    layout: str | None = typer.Option(None, "--layout", help="Override the pipeline's layout: " + LAYOUT_HELP),
    batch: bool = typer.Option(False, "--batch", help="Judge through the provider's batch API (half the price)."),
    detach: bool = typer.Option(False, "--detach", help="Submit through the batch API (implies --batch), print "
                                "the job id and exit."),
    poll_seconds: float = typer.Option(30.0, "--poll-seconds", help="With --batch: seconds between checks."),
    engine: str | None = typer.Option(None, "--engine", help="local or ray (overrides the pipeline's engine)."),
    ray_address: str | None = typer.Option(None, "--ray-address", help="Judge on this Ray cluster (implies --engine "
                                           "ray; default: a local Ray on loopback for the run)."),
    ray_actors: int | None = typer.Option(None, "--ray-actors", min=1,
                                          help="With --engine ray: actors answering calls."),
    ray_in_flight: int | None = typer.Option(None, "--ray-in-flight", min=1,
                                             help="With --engine ray: requests in flight per actor."),
) -> None:
    """Run a pipeline file; resumable: judgments already cached are not sent again."""
    from winnow.pipeline import Pipeline

    if max_cost is not None and max_cost <= 0:  # rate's words: the engine's own would allow 0
        fail(f"--max-cost must be more than 0 dollars (got {max_cost:g}): at 0 nothing would ever be sent")
    with user_errors(on_bad_row="pipeline"):
        spec = Pipeline.from_yaml(pipeline)
        update: dict[str, object] = {}
        if model:
            update["model"] = model
            update["judges"] = [j.model_copy(update={"model": None}) for j in spec.judges]
        if api_base:
            update["api_base"] = api_base
        if api_key:
            update["api_key"] = api_key
        if cache_dir:
            update["cache_dir"] = str(cache_dir)
        if transport:
            update["transport"] = transport
        if layout:
            update["layout"] = layout
        if batch or detach:
            update["batch"] = True
        if engine or ray_address or ray_actors or ray_in_flight:
            update["engine"] = engine_override(spec.engine, engine, ray_address, ray_actors, ray_in_flight)
        if max_cost is not None:
            update["max_cost"] = max_cost
        if output_dir:
            update["outputs"] = spec.outputs.model_copy(update={"dir": str(output_dir)})
        spec = spec.updated(update, f"{pipeline} with the command line's options") if update else spec
        if dry_run:
            _dry_run(spec)
            return
        from winnow.pipeline_run import PipelineDetached

        try:
            result = spec.run(progress=not quiet, detach=detach, poll_seconds=poll_seconds)
        except PipelineDetached as exc:
            typer.echo(exc.job)
            from winnow.cli.batch import detached_pipeline_hint

            err(detached_pipeline_hint(exc.job, spec.cache_dir, resume_command()))
            return
    from winnow.cli.summary import nothing_judged, print_summary

    print_summary(result.rate)
    err(result.describe())
    if nothing_judged(result.rate):
        err("no row got a judgment: every one is judge_failed (the reasons are above)")
        raise typer.Exit(1)
    if result.rate.stats.stopped:
        err(f"stopped early ({result.rate.stats.stopped}); resume with:\n  {resume_command()}")


def _dry_run(spec: Pipeline) -> None:
    """One estimate per judge step (each may have its own model), summed, after the checks a
    real run makes before its first request: a file the run would refuse is refused here too."""
    from winnow.audit.costs import estimate, format_estimate
    from winnow.pipeline_run import preflight

    preflight(spec, batch=spec.batch)
    total, unpriced = 0.0, []
    for step in spec.judges:
        est = estimate(
            spec.input, [step.name], step.model or spec.model or "",
            api_base=step.api_base or spec.api_base, judge_options=dict(step.options),
            cache_dir=spec.cache_dir, layout=spec.layout, column_map=spec.map,
            id_column=spec.id_column, on_bad_row=spec.on_bad_row, limit=spec.limit, side=spec.side,
            batch=spec.batch,  # priced at the provider's batch rates (half)
        )
        typer.echo(format_estimate(est))
        total += est.cost
        unpriced += [j.judge for j in est.judges if j.calls and not (j.price_in or j.price_out)]
    if unpriced:
        typer.echo(f"pipeline total: ~${total:.4f} plus {', '.join(unpriced)} (no listed price)")
    else:
        typer.echo(f"pipeline total: ~${total:.4f}")


def engine_override(current: Any, engine: str | None, address: str | None, actors: int | None,
                    in_flight: int | None) -> Any:
    """The pipeline's engine step with the command line's choices on top: a cluster address alone
    means the Ray engine (a user who names a cluster wants to judge on it)."""
    from winnow.pipeline import EngineStep

    current = current or EngineStep()
    chosen = {"kind": engine or ("ray" if address else current.kind), "address": address, "actors": actors,
              "in_flight_per_actor": in_flight}
    return current.model_copy(update={k: v for k, v in chosen.items() if v is not None})
