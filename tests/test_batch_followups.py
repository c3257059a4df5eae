"""Batch mode as a user follows it: status from the provider, honest run numbers, refusals,
signals, and follow-up commands that work as printed (the exploratory tester's findings)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.batchserver import BatchServer
from winnow.api import open_cache, rate
from winnow.batch.driver import JobFinished, cancel, follow_up, submit
from winnow.batch.journal import list_jobs, load_job
from winnow.cache.runs import last_run, read_runs
from winnow.cli.app import app

ROOT = Path(__file__).resolve().parents[1]
MODEL = "openai/gpt-4o-mini"  # listed price: the cost of a batch run is not zero


def _args(data: Path, url: str, out: Path) -> dict:
    return {"data": str(data), "judges": ["alpagasus"], "model": MODEL, "api_base": url, "output": str(out)}


def _rate_cli(data: Path, url: str, out: Path, cache_dir: Path, *extra: str) -> list[str]:
    return ["rate", str(data), "--judge", "alpagasus", "--model", MODEL, "--api-base", url, "-o", str(out),
            "--cache-dir", str(cache_dir), "--batch", *extra]


def _command_in(output: str, verb: str) -> list[str]:
    """The first `winnow batch VERB ...` command printed between backquotes, as argv."""
    start = output.index(f"`winnow batch {verb} ")
    return shlex.split(output[start + 1:output.index("`", start + 1)])[1:]


def test_status_asks_the_provider_and_journals_its_answer(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:20])
    cache_dir = tmp_path / "c"
    with BatchServer(delay=0.5) as server:
        job = submit(_args(data, server.url, tmp_path / "o.jsonl"), cache_dir=cache_dir, detach=True).job.job
        time.sleep(0.6)  # the provider has finished; the journal still says validating
        offline = CliRunner().invoke(app, ["batch", "status", job, "--cache-dir", str(cache_dir), "--offline"])
        assert offline.exit_code == 0 and "r1c1: validating" in offline.output
        assert server.batches["batch_1"]["status"] == "validating"  # --offline did not ask
        status = CliRunner().invoke(app, ["batch", "status", job, "--cache-dir", str(cache_dir)])
        assert status.exit_code == 0, status.output
        assert "r1c1: completed" in status.output and "completed 20" in status.output
        assert "every batch has finished at the provider" in status.output
        assert f"winnow batch collect {job} --cache-dir {cache_dir}" in status.output
    journal = load_job(cache_dir, job)
    assert journal.chunks[0].status == "completed" and journal.refreshed_at
    assert not journal.chunks[0].ingested and journal.state == "running"  # status only looks; collect ingests
    # the provider out of reach: the journal's view, a warning, exit 1
    with BatchServer(delay=60) as server:
        job = submit(_args(data, server.url, tmp_path / "o.jsonl"), cache_dir=tmp_path / "d", detach=True).job.job
    down = CliRunner().invoke(app, ["batch", "status", job, "--cache-dir", str(tmp_path / "d")])
    assert down.exit_code == 1 and "could not ask the provider" in down.output and "r1c1: validating" in down.output


def test_status_shows_the_providers_errors(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:5])
    with BatchServer(fail_validation=True) as server:
        job = submit(_args(data, server.url, tmp_path / "o.jsonl"), cache_dir=tmp_path / "c", detach=True).job.job
        status = CliRunner().invoke(app, ["batch", "status", job, "--cache-dir", str(tmp_path / "c")])
    assert status.exit_code == 0, status.output
    assert "r1c1: failed" in status.output
    assert "provider error: invalid_json: line 1: bad request body" in status.output


def test_a_batch_run_counts_the_judgments_it_bought(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:30])
    cache_dir = tmp_path / "c"
    with BatchServer() as server:
        result = CliRunner().invoke(app, _rate_cli(data, server.url, tmp_path / "o.jsonl", cache_dir,
                                                   "--poll-seconds", "0.05", "-q"))
        assert result.exit_code == 0, result.output
        # an online re-run reads them all from the cache, as before
        again = rate(data, ["alpagasus"], MODEL, api_base=server.url, cache_dir=tmp_path / "c")
        assert again.stats.cache_hits == 30 and again.stats.calls == 0 and server.online == 0
    with open_cache(cache_dir) as cache:
        records = list(cache.records())
    cost = sum(r["cost"] for r in records)
    prompt = sum(r["usage"]["prompt_tokens"] for r in records)
    assert len(records) == 30 and cost > 0 and prompt > 0
    assert "judgments: 0 from cache, 30 new (30 requests" in result.output
    assert f"tokens: {prompt} in" in result.output and f"cost ${cost:.4f}" in result.output
    assert "transport: batch (30 calls)" in result.output
    batch_run = [r for r in read_runs(cache_dir) if r["stats"]["transports"]]  # the online re-run came after
    stats = batch_run[-1]["stats"]  # runs.jsonl, which `winnow cache stats` reads
    assert stats["calls"] == 30 and stats["cache_hits"] == 0 and stats["requests"] == 30
    assert stats["cost"] == pytest.approx(cost, abs=1e-6) and stats["prompt_tokens"] == prompt


def test_collect_counts_what_the_job_bought(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:12])
    cache_dir = tmp_path / "c"
    with BatchServer(delay=0.3) as server:
        job = submit(_args(data, server.url, tmp_path / "o.jsonl"), cache_dir=cache_dir, detach=True).job.job
        time.sleep(0.4)
        done = CliRunner().invoke(app, ["batch", "collect", job, "--cache-dir", str(cache_dir)])
    assert done.exit_code == 0, done.output
    assert "judgments: 0 from cache, 12 new (12 requests" in done.output and "cost $0.0000" not in done.output
    assert last_run(cache_dir)["stats"]["calls"] == 12


def test_batch_with_no_cache_is_refused(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:5])
    with BatchServer() as server:
        result = CliRunner().invoke(app, _rate_cli(data, server.url, tmp_path / "o.jsonl", tmp_path / "c",
                                                   "--no-cache", "--poll-seconds", "0.05"))
        assert not server.batches and not server.files  # nothing was sent
    assert result.exit_code == 2
    assert "--batch needs the cache" in result.output and "--no-cache" in result.output
    assert not (tmp_path / "c").exists() and not (tmp_path / "o.jsonl").exists()


def test_cancel_refuses_a_finished_job(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:5])
    with BatchServer() as server:
        outcome = submit(_args(data, server.url, tmp_path / "o.jsonl"), cache_dir=tmp_path / "c", poll_seconds=0.05)
        assert outcome.done
        with pytest.raises(JobFinished, match="is done: there is nothing to cancel"):
            cancel(outcome.job.job, cache_dir=tmp_path / "c")
        result = CliRunner().invoke(app, ["batch", "cancel", outcome.job.job, "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 2 and "nothing to cancel" in result.output
    assert load_job(tmp_path / "c", outcome.job.job).state == "done"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_names_the_job_and_the_same_command_resumes_it(sig, code, alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:10])
    cache_dir = tmp_path / "c"
    with BatchServer(delay=60) as server:
        argv = [sys.executable, "-m", "winnow", *_rate_cli(data, server.url, tmp_path / "o.jsonl", cache_dir,
                                                          "--poll-seconds", "0.05", "-q")]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 60
        while not (list_jobs(cache_dir) and list_jobs(cache_dir)[0].chunks
                   and list_jobs(cache_dir)[0].chunks[0].batch_id):  # submitted: now it waits
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.send_signal(sig)
        out, errors = proc.communicate(timeout=60)
        (job,) = list_jobs(cache_dir)
        assert proc.returncode == code, errors.decode()
        assert out.decode().strip() == job.job
        message = errors.decode()
        assert f"interrupted by {sig.name}" in message
        assert f"winnow batch status {job.job} --cache-dir {cache_dir}" in message
        assert f"winnow batch collect {job.job} --cache-dir {cache_dir} --wait" in message
        server.delay = 0  # the provider finishes; the same command goes on with the same job
        again = CliRunner().invoke(app, _rate_cli(data, server.url, tmp_path / "o.jsonl", cache_dir,
                                                  "--poll-seconds", "0.05", "-q"))
        assert again.exit_code == 0, again.output
        assert f"went on with batch job {job.job}" in again.output
        assert len(server.batches) == 1 and max(server.created.values()) == 1  # nothing bought twice
    assert [j.state for j in list_jobs(cache_dir)] == ["done"]
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 10


def test_detach_hints_carry_the_cache_dir_and_work_as_printed(alpaca_rows, write_jsonl, tmp_path):
    from winnow.cache.store import DEFAULT_DIR

    data = write_jsonl(alpaca_rows[:8])
    cache_dir = tmp_path / "my cache"  # a space: the printed command must quote it
    with BatchServer(delay=0.3) as server:
        result = CliRunner().invoke(app, _rate_cli(data, server.url, tmp_path / "o.jsonl", cache_dir,
                                                   "--detach", "-q"))
        assert result.exit_code == 0, result.output
        job = result.stdout.strip().splitlines()[0]
        status = CliRunner().invoke(app, _command_in(result.output, "status"))
        assert status.exit_code == 0 and job in status.output, status.output
        time.sleep(0.4)
        collect = CliRunner().invoke(app, _command_in(result.output, "collect"))
        assert collect.exit_code == 0, collect.output
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 8
    assert follow_up("status", "wb-x", DEFAULT_DIR) == "winnow batch status wb-x"  # the default needs no flag


def test_collect_on_a_pipeline_job_says_what_writes_the_outputs(alpaca_rows, write_jsonl, tmp_path, monkeypatch):
    import yaml

    data = write_jsonl(alpaca_rows[:10])
    with BatchServer(delay=0.3) as server:
        spec = {"input": str(data), "model": MODEL, "api_base": server.url, "judges": [{"name": "alpagasus"}],
                "outputs": {"dir": str(tmp_path / "run")}, "batch": True}
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump(spec))
        cache_dir = tmp_path / "c"
        argv = ["run", str(path), "--cache-dir", str(cache_dir), "--detach", "-q"]
        monkeypatch.setattr(sys, "argv", ["winnow", *argv])  # what the command line would hold
        first = CliRunner().invoke(app, argv)
        assert first.exit_code == 0, first.output
        job = first.stdout.strip().splitlines()[0]
        assert f"winnow batch status {job} --cache-dir {cache_dir}" in first.output
        time.sleep(0.4)
        done = CliRunner().invoke(app, ["batch", "collect", job, "--cache-dir", str(cache_dir)])
        assert done.exit_code == 0, done.output
        assert not (tmp_path / "run" / "judged.jsonl").exists()
        start = done.output.index("run `winnow run ")
        command = done.output[start + 5:done.output.index("`", start + 5)]
        assert "--detach" not in command and "p.yaml" in command
        again = CliRunner().invoke(app, shlex.split(command)[1:])  # as printed
        assert again.exit_code == 0, again.output
        assert len(server.batches) == 1 and server.online == 0  # every judgment from the cache
    assert len((tmp_path / "run" / "judged.jsonl").read_text().splitlines()) == 10


def test_rerunning_a_detached_pipeline_resumes_its_job(alpaca_rows, write_jsonl, tmp_path):
    """The detach hint says to run the pipeline again: that must re-attach, not buy it all twice."""
    import yaml

    data = write_jsonl(alpaca_rows[:10])
    with BatchServer(delay=0.3) as server:
        spec = {"input": str(data), "model": MODEL, "api_base": server.url, "judges": [{"name": "alpagasus"}],
                "cache_dir": str(tmp_path / "c"), "outputs": {"dir": str(tmp_path / "run")}, "batch": True}
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump(spec))
        first = CliRunner().invoke(app, ["run", str(path), "--detach", "-q"])
        assert first.exit_code == 0, first.output
        again = CliRunner().invoke(app, ["run", str(path), "--poll-seconds", "0.05", "-q"])
        assert again.exit_code == 0, again.output
        assert len(server.batches) == 1 and max(server.created.values()) == 1
    assert len((tmp_path / "run" / "judged.jsonl").read_text().splitlines()) == 10


def test_retry_failed_in_batch_mode_stores_the_new_answer(write_jsonl, tmp_path):
    """A failed judgment is a cached record; --retry-failed asks again, and the answer it buys
    must replace the failure (ingest skipped every key already cached, so it was paid and lost)."""
    from tests.batchserver import BatchServer
    from winnow.api import open_cache
    from winnow.batch.driver import submit

    rows = [{"instruction": f"Add {i} and 2.", "input": "", "output": str(i + 2)} for i in range(6)]
    data = write_jsonl(rows)
    with BatchServer() as server:
        server._chat.responder = lambda body: "no score here" if "Add 3 and 2" in str(body["messages"]) else None
        args = {"data": str(data), "judges": ["alpagasus"], "model": "openai/gpt-4o-mini", "api_base": server.url,
                "output": str(tmp_path / "first.jsonl")}
        first = submit(args, cache_dir=tmp_path / "c", poll_seconds=0.05)
        assert first.done
        statuses = [r["alpagasus_status"] for r in _read(tmp_path / "first.jsonl")]
        assert statuses == ["ok", "ok", "ok", "judge_failed", "ok", "ok"]
        server._chat.responder = lambda body: None  # the judge now answers that row too
        again = submit({**args, "output": str(tmp_path / "again.jsonl"), "retry_failed": True},
                       cache_dir=tmp_path / "c", poll_seconds=0.05)
        assert again.done
        assert [r["alpagasus_status"] for r in _read(tmp_path / "again.jsonl")] == ["ok"] * 6
        assert server.created[max(server.created, key=lambda k: server.created[k])] == 2  # row 3, asked twice
    with open_cache(tmp_path / "c") as cache:
        assert {r["status"] for r in cache.records()} == {"ok"}


def _read(path: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in path.read_text().splitlines()]
