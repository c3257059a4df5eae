"""``winnow batch status|collect|cancel`` and the ``--batch`` path of ``rate``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from winnow.cli.app import app, err, fail, resume_command, user_errors

batch_app = typer.Typer(help="Provider batch jobs: status, collect, cancel.", no_args_is_help=True,
                        add_completion=False, rich_markup_mode=None)
app.add_typer(batch_app, name="batch")

_CACHE_DIR = typer.Option(None, "--cache-dir", envvar="WINNOW_CACHE_DIR", help="Cache folder (holds the jobs).")
_API_KEY = typer.Option(None, "--api-key", help="API key (default: the provider's environment variable).")


def _cache_dir(cache_dir: Path | None) -> Path:
    from winnow.cache.store import default_cache_dir

    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


NO_CACHE = ("--batch needs the cache, so it cannot run with --no-cache: the batches' results are ingested into "
            "it, and the job's journal lives in it (`winnow batch collect` resumes from there, and a re-run never "
            "pays twice). Drop --no-cache, or give --cache-dir a folder of its own for this run")


def run_batch(rate: dict[str, Any], *, cache_dir: Path | None, detach: bool, poll_seconds: float,
              api_key: str | None, quiet: bool, no_cache: bool = False) -> None:
    from winnow.batch.driver import describe, follow_up, submit

    if no_cache:
        fail(NO_CACHE)
    folder = _cache_dir(cache_dir)

    def show(job: Any) -> None:
        if not quiet:
            err("\n".join(describe(job)))

    with _batch_errors():
        outcome = submit(rate, cache_dir=folder, detach=detach, poll_seconds=poll_seconds, on_status=show,
                         api_key=api_key, command=resume_command())
    if outcome.retried:
        err(f"submitted batch job {outcome.job.job}, which an earlier run of this call prepared but could not "
            "submit (nothing had been sent)")
    if outcome.resumed:
        err(f"went on with batch job {outcome.job.job}: the same call, submitted before and not yet collected "
            "(nothing is sent twice)")
    if not outcome.done:
        job = outcome.job.job
        typer.echo(job)
        err(f"submitted batch job {job}; follow it with `{follow_up('status', job, folder)}`; once it shows every "
            f"batch finished, `{follow_up('collect', job, folder)}` writes the outputs (or add --wait to wait)")
        return
    _finished(outcome, folder)


def detached_pipeline_hint(job: str, cache_dir: str | Path | None, command: str) -> str:
    """What ``winnow run --batch --detach`` prints: how to follow the job and write the pipeline's
    outputs (re-running the pipeline resumes the job: nothing is sent twice).  The command is
    journalled, so ``batch collect`` can repeat it."""
    from winnow.batch.driver import follow_up, without_detach
    from winnow.batch.journal import load_job

    folder = _cache_dir(Path(cache_dir) if cache_dir else None)
    try:
        record = load_job(folder, job)
        record.command = command
        record.save()
    except (OSError, ValueError):
        pass  # the hint matters more than the note
    rerun = without_detach(command)
    return (f"submitted batch job {job}; `{follow_up('status', job, folder)}` shows how it stands. To write the "
            f"outputs, run the pipeline again (`{rerun}`): it waits for the job and writes them, sending nothing "
            "twice")


@contextmanager
def _batch_errors() -> Iterator[None]:
    """``user_errors`` plus the batch driver's own: a provider's refusal (exit 1), a signal (the
    job id and how to go on, exit 128 + the signal), a finished job that cannot be cancelled."""
    from winnow.batch.driver import BatchInterrupted
    from winnow.batch.openai_api import BatchAPIError

    with user_errors():  # inside it: BatchInterrupted is an Interrupted, whose hint there is to re-run
        try:
            yield
        except BatchAPIError as exc:
            fail(f"the batch API refused: {exc}", code=1)
        except BatchInterrupted as exc:
            typer.echo(exc.job.job)
            err(f"\n{exc}")
            raise typer.Exit(exc.exit_code) from None


def _finished(outcome: Any, folder: Path) -> None:
    from winnow.batch.driver import follow_up, rerun_hint
    from winnow.cli.summary import print_summary

    failed = outcome.job.failed_keys()
    print_summary(outcome.result)
    if failed:
        err(f"  the provider answered {len(failed)} requests with an error (not cached: the next run asks "
            f"again); `{follow_up('status', outcome.job.job, folder)}` lists them")
    if outcome.result.output is None:
        err(rerun_hint(outcome.job))


@batch_app.command("status")
def status(job: str | None = typer.Argument(None, help="A job id (default: every job)."),
           cache_dir: Path | None = _CACHE_DIR, api_key: str | None = _API_KEY,
           offline: bool = typer.Option(False, "--offline", help="Read the local journal only; do not ask the "
                                        "provider (its answer may be out of date).")) -> None:
    """Every batch of a job: its state, request counts and errors, as the provider reports them now
    (nothing is downloaded; `batch collect` ingests)."""
    from winnow.batch.driver import describe, next_step
    from winnow.batch.journal import list_jobs, load_job

    folder = _cache_dir(cache_dir)
    with user_errors():
        jobs = [load_job(folder, job)] if job else list_jobs(folder)
    if not jobs:
        typer.echo(f"no batch jobs in {folder / 'batches'}")
    unreachable = False
    for one in jobs:
        if not offline and one.state == "running" and one.submitted:  # else there is nothing to ask about
            one, problem = _refreshed(one, folder, api_key)
            unreachable = unreachable or problem
        typer.echo("\n".join(describe(one)))
        typer.echo(f"  next: {next_step(one, folder)}")
    if unreachable:
        raise typer.Exit(1)


def _refreshed(job: Any, folder: Path, api_key: str | None) -> tuple[Any, bool]:
    """The job as the provider reports it now; on a refusal, the journal's view and the provider's
    error (the status is still worth showing, marked as possibly stale)."""
    from winnow.batch.driver import refresh
    from winnow.batch.openai_api import BatchAPIError

    try:
        return refresh(job.job, cache_dir=folder, api_key=api_key), False
    except BatchAPIError as exc:
        err(f"{job.job}: could not ask the provider ({exc}); showing the journal, which may be out of date")
        return job, True


@batch_app.command("collect")
def collect(job: str = typer.Argument(..., help="The job id printed by rate --batch --detach."),
            wait: bool = typer.Option(False, "--wait", help="Wait until everything is done."),
            poll_seconds: float = typer.Option(30.0, "--poll-seconds"),
            cache_dir: Path | None = _CACHE_DIR, api_key: str | None = _API_KEY) -> None:
    """Ingest what finished, submit the next round when one is due, write the outputs when done."""
    from winnow.batch.driver import collect as collect_api
    from winnow.batch.driver import describe, follow_up

    folder = _cache_dir(cache_dir)
    with _batch_errors():
        outcome = collect_api(job, cache_dir=folder, wait=wait, poll_seconds=poll_seconds, api_key=api_key)
    if not outcome.done:
        err("\n".join(describe(outcome.job)))
        err(f"not finished yet: run `{follow_up('collect', job, folder)}` again later (or with --wait)")
        raise typer.Exit(3)
    if outcome.result is None:
        err(f"job {job} was cancelled")
        return
    if outcome.already:
        err(f"batch job {job} was already collected: nothing new was bought; the numbers below are this "
            "collect's (every judgment from the cache), and the outputs were written again")
    _finished(outcome, folder)


@batch_app.command("cancel")
def cancel(job: str = typer.Argument(...), cache_dir: Path | None = _CACHE_DIR,
           api_key: str | None = _API_KEY) -> None:
    """Cancel the job's running batches; what finished stays in the cache."""
    from winnow.batch.driver import cancel as cancel_api
    from winnow.batch.driver import describe

    with _batch_errors():
        done = cancel_api(job, cache_dir=_cache_dir(cache_dir), api_key=api_key)
    typer.echo("\n".join(describe(done)))
