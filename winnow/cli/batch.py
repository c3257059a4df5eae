"""``winnow batch status|collect|cancel`` and the ``--batch`` path of ``rate``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from winnow.cli.app import app, err, fail, user_errors

batch_app = typer.Typer(help="Provider batch jobs: status, collect, cancel.", no_args_is_help=True,
                        add_completion=False, rich_markup_mode=None)
app.add_typer(batch_app, name="batch")

_CACHE_DIR = typer.Option(None, "--cache-dir", envvar="WINNOW_CACHE_DIR", help="Cache folder (holds the jobs).")
_API_KEY = typer.Option(None, "--api-key", help="API key (default: the provider's environment variable).")


def _cache_dir(cache_dir: Path | None) -> Path:
    from winnow.cache.store import default_cache_dir

    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def run_batch(rate: dict[str, Any], *, cache_dir: Path | None, detach: bool, poll_seconds: float,
              api_key: str | None, quiet: bool) -> None:
    from winnow.batch.driver import describe, submit
    from winnow.batch.openai_api import BatchAPIError

    def show(job: Any) -> None:
        if not quiet:
            err("\n".join(describe(job)))

    with user_errors():
        try:
            outcome = submit(rate, cache_dir=_cache_dir(cache_dir), detach=detach, poll_seconds=poll_seconds,
                             on_status=show, api_key=api_key)
        except BatchAPIError as exc:
            fail(f"the batch API refused: {exc}", code=1)
    if not outcome.done:
        typer.echo(outcome.job.job)
        err(f"submitted batch job {outcome.job.job}; follow it with `winnow batch status {outcome.job.job}`, "
            f"write the outputs with `winnow batch collect {outcome.job.job}` once it is done")
        return
    _finished(outcome)


def _finished(outcome: Any) -> None:
    from winnow.cli.summary import print_summary

    failed = outcome.job.failed_keys()
    print_summary(outcome.result)
    if failed:
        err(f"  the provider answered {len(failed)} requests with an error (not cached: the next run asks "
            f"again); `winnow batch status {outcome.job.job}` lists them")


@batch_app.command("status")
def status(job: str | None = typer.Argument(None, help="A job id (default: every job)."),
           cache_dir: Path | None = _CACHE_DIR) -> None:
    """Every batch of a job: its state, request counts and errors (nothing is downloaded)."""
    from winnow.batch.driver import describe
    from winnow.batch.journal import list_jobs, load_job

    folder = _cache_dir(cache_dir)
    with user_errors():
        jobs = [load_job(folder, job)] if job else list_jobs(folder)
    if not jobs:
        typer.echo(f"no batch jobs in {folder / 'batches'}")
    for one in jobs:
        typer.echo("\n".join(describe(one)))


@batch_app.command("collect")
def collect(job: str = typer.Argument(..., help="The job id printed by rate --batch --detach."),
            wait: bool = typer.Option(False, "--wait", help="Wait until everything is done."),
            poll_seconds: float = typer.Option(30.0, "--poll-seconds"),
            cache_dir: Path | None = _CACHE_DIR, api_key: str | None = _API_KEY) -> None:
    """Ingest what finished, submit the next round when one is due, write the outputs when done."""
    from winnow.batch.driver import collect as collect_api
    from winnow.batch.driver import describe
    from winnow.batch.openai_api import BatchAPIError

    with user_errors():
        try:
            outcome = collect_api(job, cache_dir=_cache_dir(cache_dir), wait=wait, poll_seconds=poll_seconds,
                                  api_key=api_key)
        except BatchAPIError as exc:
            fail(f"the batch API refused: {exc}", code=1)
    if not outcome.done:
        err("\n".join(describe(outcome.job)))
        err(f"not finished yet: run `winnow batch collect {job}` again later (or with --wait)")
        raise typer.Exit(3)
    if outcome.result is None:
        err(f"job {job} was cancelled")
        return
    _finished(outcome)


@batch_app.command("cancel")
def cancel(job: str = typer.Argument(...), cache_dir: Path | None = _CACHE_DIR,
           api_key: str | None = _API_KEY) -> None:
    """Cancel the job's running batches; what finished stays in the cache."""
    from winnow.batch.driver import cancel as cancel_api
    from winnow.batch.driver import describe

    with user_errors():
        done = cancel_api(job, cache_dir=_cache_dir(cache_dir), api_key=api_key)
    typer.echo("\n".join(describe(done)))
