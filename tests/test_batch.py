"""Provider batch mode against a loopback Files + Batches server (tests/batchserver.py), issue 17."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.batchserver import BatchServer
from winnow.api import open_cache, rate
from winnow.batch.driver import cancel, collect, submit
from winnow.batch.journal import list_jobs
from winnow.cli.app import app
from winnow.engine.config import EngineSettings
from winnow.engine.pricing import cost_of

ROOT = Path(__file__).resolve().parents[1]
MODEL = "openai/gpt-4o-mini"  # a model with a listed price, so the half price can be checked


def _rate_args(data: Path, url: str, out: Path, judges: list[str] | None = None) -> dict:
    return {"data": str(data), "judges": judges or ["alpagasus"], "model": MODEL, "api_base": url,
            "output": str(out)}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_batch_output_is_identical_to_online_at_half_the_price(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:3000])
    with BatchServer() as server:  # answers online too, at the same address: the same cache keys
        plain = rate(data, ["alpagasus"], MODEL, api_base=server.url, cache_dir=tmp_path / "online",
                     output=tmp_path / "online.jsonl", settings=EngineSettings(concurrency=64))
        assert server.online == 3000 and plain.stats.calls == 3000
        outcome = submit(_rate_args(data, server.url, tmp_path / "batch.jsonl"), cache_dir=tmp_path / "b",
                         poll_seconds=0.05)
        assert outcome.done and max(server.created.values()) == 1 and len(server.created) == 3000
        assert len(server.batches) == 1  # 3,000 requests: one file, one batch
        # a batch judgment is a cache hit online: the re-run sends nothing
        again = rate(data, ["alpagasus"], MODEL, api_base=server.url, cache_dir=tmp_path / "b")
        assert server.online == 3000 and again.stats.cache_hits == 3000 and again.stats.calls == 0
        # and an online judgment is a cache hit for a batch run: nothing is batched
        nothing = submit(_rate_args(data, server.url, tmp_path / "again.jsonl"), cache_dir=tmp_path / "online",
                         poll_seconds=0.05)
        assert nothing.done and not nothing.job.rounds and len(server.batches) == 1
    assert (tmp_path / "batch.jsonl").read_bytes() == (tmp_path / "online.jsonl").read_bytes()
    with open_cache(tmp_path / "b") as cache:
        records = list(cache.records())
    assert len(records) == 3000 and {r["transport"] for r in records} == {"batch"}
    for record in records[:50]:
        usage = record["usage"]
        assert record["cost"] == pytest.approx(0.5 * cost_of(MODEL, usage["prompt_tokens"],
                                                             usage["completion_tokens"]))
        assert record["cost"] > 0


def test_multi_call_judges_go_in_rounds_and_errors_are_not_judgments(write_jsonl, tmp_path):
    rows = [{"conversations": [{"from": "human", "value": f"Question {i}?"}, {"from": "gpt", "value": "Answer."},
                               {"from": "human", "value": f"Follow-up {i}?"}, {"from": "gpt", "value": "More."}]}
            for i in range(6)]
    data = write_jsonl(rows)
    with BatchServer() as server:
        outcome = submit(_rate_args(data, server.url, tmp_path / "out.jsonl", ["instag"]),
                         cache_dir=tmp_path / "c", poll_seconds=0.05)
        assert outcome.done
        # InsTag asks turn by turn: round 1 holds every first turn, round 2 every second turn
        assert len(outcome.job.rounds) == 2 and max(server.created.values()) == 1
    written = _lines(tmp_path / "out.jsonl")
    assert all(r["instag_status"] == "ok" and r["instag_tags"] for r in written)


def test_provider_errors_and_expiry(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:40])
    with BatchServer(expire_first=True) as server:
        outcome = submit(_rate_args(data, server.url, tmp_path / "out.jsonl"), cache_dir=tmp_path / "c",
                         poll_seconds=0.05)
        # the first batch expired half done: only its unfinished lines went again, once
        assert outcome.done and len(outcome.job.rounds) == 2
        assert max(server.created.values()) == 2 and sum(v == 2 for v in server.created.values()) == 20
    assert all(r["alpagasus_status"] == "ok" for r in _lines(tmp_path / "out.jsonl"))

    with BatchServer() as server:
        first = submit(_rate_args(data, server.url, tmp_path / "x.jsonl"), cache_dir=tmp_path / "k",
                       poll_seconds=0.05)  # which keys the rows have: the custom ids of a first run
        keys = sorted(server.created)
        assert first.done
        server.created.clear()
        server.error_ids = set(keys[:3])
        outcome = submit(_rate_args(data, server.url, tmp_path / "e.jsonl"), cache_dir=tmp_path / "e",
                         poll_seconds=0.05)
        assert outcome.done and max(server.created.values()) == 1  # an error line is not sent again this job
        server.created.clear()
        server.error_ids = set()
        again = submit(_rate_args(data, server.url, tmp_path / "e2.jsonl"), cache_dir=tmp_path / "e",
                       poll_seconds=0.05)
        assert again.done and sorted(server.created) == sorted(keys[:3])  # the next run asks those again
    written = _lines(tmp_path / "e.jsonl")
    failed = [r for r in written if r["alpagasus_status"] != "ok"]
    assert len(failed) == 3 and all("not judged" in r["alpagasus_error"] for r in failed)
    assert set(outcome.job.failed_keys()) == set(keys[:3])
    assert all(r["alpagasus_status"] == "ok" for r in _lines(tmp_path / "e2.jsonl"))


def test_validation_failure_is_reported_with_the_providers_message(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:5])
    with BatchServer(fail_validation=True) as server:
        outcome = submit(_rate_args(data, server.url, tmp_path / "out.jsonl"), cache_dir=tmp_path / "c",
                         poll_seconds=0.05)
    reasons = set(outcome.job.failed_keys().values())
    assert reasons == {"batch validation failed: line 1: bad request body"}
    assert all(r["alpagasus_status"] == "judge_failed" for r in _lines(tmp_path / "out.jsonl"))


def test_detach_then_status_then_collect(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:20])
    cache_dir = tmp_path / "c"
    with BatchServer(delay=1.0) as server:
        started = time.monotonic()
        result = CliRunner().invoke(app, ["rate", str(data), "--judge", "alpagasus", "--model", MODEL,
                                          "--api-base", server.url, "--cache-dir", str(cache_dir), "-o",
                                          str(tmp_path / "out.jsonl"), "--batch", "--detach", "-q"])
        assert result.exit_code == 0, result.output
        assert time.monotonic() - started < 10
        job = result.stdout.strip().splitlines()[0]
        assert job.startswith("wb-") and not (tmp_path / "out.jsonl").exists()
        status = CliRunner().invoke(app, ["batch", "status", job, "--cache-dir", str(cache_dir)])
        assert status.exit_code == 0 and "validating" in status.output
        early = CliRunner().invoke(app, ["batch", "collect", job, "--cache-dir", str(cache_dir)])
        assert early.exit_code == 3 and "not finished yet" in early.output
        time.sleep(1.1)
        done = CliRunner().invoke(app, ["batch", "collect", job, "--cache-dir", str(cache_dir)])
        assert done.exit_code == 0, done.output
        assert "alpagasus: 20 ok" in done.output
    assert len(_lines(tmp_path / "out.jsonl")) == 20
    assert [j.state for j in list_jobs(cache_dir)] == ["done"]


def test_cancel_keeps_what_finished(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:10])
    with BatchServer(delay=60) as server:
        outcome = submit(_rate_args(data, server.url, tmp_path / "out.jsonl"), cache_dir=tmp_path / "c",
                         detach=True)
        job = cancel(outcome.job.job, cache_dir=tmp_path / "c")
        assert job.state == "cancelled" and server.batches["batch_1"]["status"] == "cancelled"
        again = collect(outcome.job.job, cache_dir=tmp_path / "c")
        assert again.done and again.result is None


def test_the_api_key_never_reaches_the_journal(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:3])
    with BatchServer() as server:
        submit(_rate_args(data, server.url, tmp_path / "o.jsonl"), cache_dir=tmp_path / "c", poll_seconds=0.05,
               api_key="sk-secret-123456789")
    for path in (tmp_path / "c").rglob("*"):
        if path.is_file():
            assert b"sk-secret-123456789" not in path.read_bytes(), path
    with pytest.raises(ValueError, match="api_key"):
        submit({**_rate_args(data, "http://x/v1", tmp_path / "o.jsonl"), "api_key": "k"}, cache_dir=tmp_path / "c")


@pytest.mark.parametrize("point", ["uploaded", "created", "ingest:40", "ingest:560"])
def test_kill_9_at_each_step_then_resume_pays_once(point, alpaca_rows, write_jsonl, tmp_path):
    """winnow SIGKILLs itself after the upload, after the batch is created but before the journal
    knows it, and while ingesting; `batch collect` resumes: each request is created once, no
    judgment is lost, the output is the online run's."""
    data = write_jsonl(alpaca_rows[:700])  # ingest:560 dies in the second group of 500, the first committed
    with BatchServer() as server:
        rate(data, ["alpagasus"], MODEL, api_base=server.url, cache_dir=tmp_path / "online",
             output=tmp_path / "online.jsonl")
        env = dict(os.environ, PYTHONPATH=str(ROOT), WINNOW_CACHE_DIR=str(tmp_path / "c"), WINNOW_FAULT_KILL_AT=point)
        argv = [sys.executable, "-m", "winnow", "rate", str(data), "--judge", "alpagasus", "--model", MODEL,
                "--api-base", server.url, "-o", str(tmp_path / "batch.jsonl"), "--batch", "--poll-seconds", "0.05",
                "-q"]
        first = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=120)
        assert first.returncode == -9, first.stderr.decode()
        (job,) = list_jobs(tmp_path / "c")
        if point == "created":
            assert all(c.batch_id is None for c in job.chunks) and len(server.batches) == 1  # the window
        if point.startswith("ingest"):  # groups of 500 lines commit together; the group in hand is lost
            with open_cache(tmp_path / "c") as cache:
                assert len(cache) == {"ingest:40": 0, "ingest:560": 500}[point]
        del env["WINNOW_FAULT_KILL_AT"]
        resumed = subprocess.run([sys.executable, "-m", "winnow", "batch", "collect", job.job, "--wait",
                                  "--poll-seconds", "0.05"], cwd=tmp_path, env=env, capture_output=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr.decode()
        assert len(server.batches) == 1 and len(server.created) == 700 and max(server.created.values()) == 1
    assert (tmp_path / "batch.jsonl").read_bytes() == (tmp_path / "online.jsonl").read_bytes()


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_pays_once(alpaca_rows, write_jsonl, tmp_path):
    """kill -9 of `winnow rate --batch` at random moments, resumed with `batch collect` each time:
    the server sees each row's request exactly once, and the output equals an online run's."""
    data = write_jsonl(alpaca_rows[:300])
    port = _free_port()
    with BatchServer(port=port) as same_address:  # the online reference, at the address the batches use
        rate(data, ["alpagasus"], MODEL, api_base=same_address.url, cache_dir=tmp_path / "online",
             output=tmp_path / "online.jsonl")
    counts = tmp_path / "counts.json"
    server = subprocess.Popen([sys.executable, str(ROOT / "tests" / "batchserver.py"), "--port", str(port),
                               "--delay", "4.0", "--counts", str(counts)], cwd=ROOT,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None and server.stdout.readline()
        url = f"http://127.0.0.1:{port}/v1"
        env = dict(os.environ, PYTHONPATH=str(ROOT), WINNOW_CACHE_DIR=str(tmp_path / "c"))
        argv = [sys.executable, "-m", "winnow", "rate", str(data), "--judge", "alpagasus", "--model", MODEL,
                "--api-base", url, "-o", str(tmp_path / "batch.jsonl"), "--batch", "--poll-seconds", "0.1", "-q"]
        rng = random.Random(17)
        kills = 0
        proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while True:
            try:  # kills at random moments (start-up, upload, create, poll, ingest), then let it finish
                proc.wait(timeout=rng.uniform(0.4, 1.6) if kills < 4 else 120)
                break
            except subprocess.TimeoutExpired:
                proc.kill()  # SIGKILL
                proc.wait()
                kills += 1
                jobs = list_jobs(tmp_path / "c")
                if not jobs:  # killed before the job was journalled: start again
                    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                    continue
                proc = subprocess.Popen([sys.executable, "-m", "winnow", "batch", "collect", jobs[-1].job, "--wait",
                                         "--poll-seconds", "0.1"], cwd=tmp_path, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=10)
    created = json.loads(counts.read_text())
    assert kills >= 2
    assert len(created) == 300 and max(created.values()) == 1, f"paid twice after {kills} kills"
    assert (tmp_path / "batch.jsonl").read_bytes() == (tmp_path / "online.jsonl").read_bytes()
    print(f"\n{kills} kill -9 along the way; every request created once")


def _free_port() -> int:
    from winnow.local import free_port

    return free_port()


def test_pipeline_in_batch_mode_detached_then_run_again(alpaca_rows, write_jsonl, tmp_path):
    import yaml

    data = write_jsonl(alpaca_rows[:30])
    with BatchServer(delay=0.5) as server:
        spec = {"input": str(data), "model": MODEL, "api_base": server.url, "cache_dir": str(tmp_path / "c"),
                "judges": [{"name": "alpagasus"}, {"name": "instag"}],
                "select": {"method": "threshold", "min_score": 4.0}, "outputs": {"dir": str(tmp_path / "run")},
                "batch": True}
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump(spec))
        first = CliRunner().invoke(app, ["run", str(path), "--detach", "-q"])
        assert first.exit_code == 0, first.output
        job = first.stdout.strip().splitlines()[0]
        assert job.startswith("wb-") and not (tmp_path / "run" / "judged.jsonl").exists()
        time.sleep(0.6)
        done = CliRunner().invoke(app, ["batch", "collect", job, "--cache-dir", str(tmp_path / "c")])
        assert done.exit_code == 0, done.output
        assert max(server.created.values()) == 1 and len(server.created) == 60  # 30 rows x 2 judges
        again = CliRunner().invoke(app, ["run", str(path), "--poll-seconds", "0.05", "-q"])
        assert again.exit_code == 0, again.output
        assert len(server.batches) == 1 and server.online == 0  # all from the cache: nothing sent again
    judged = _lines(tmp_path / "run" / "judged.jsonl")
    assert len(judged) == 30 and all(r["alpagasus_status"] == "ok" and r["instag_status"] == "ok" for r in judged)


def test_max_cost_counts_batches_not_yet_collected_and_the_dry_run_prices_at_batch_rates(
        alpaca_rows, write_jsonl, tmp_path, monkeypatch):
    from winnow.audit.costs import estimate
    from winnow.batch.openai_api import OpenAIBatches

    data = write_jsonl(alpaca_rows[:40])
    online = estimate(data, ["alpagasus"], MODEL, cache_dir=tmp_path / "c")
    batch = estimate(data, ["alpagasus"], MODEL, cache_dir=tmp_path / "c", batch=True)
    assert batch.cost == pytest.approx(online.cost / 2) and batch.cost > 0
    monkeypatch.setattr(OpenAIBatches, "max_requests", 10)  # provider limits split the work: 4 files
    with BatchServer(delay=60) as server:  # nothing finishes: every created batch is uncollected
        first = submit(_rate_args(data, server.url, tmp_path / "o.jsonl"), cache_dir=tmp_path / "c", detach=True)
        assert len(server.batches) == 4 and all(c.requests == 10 for c in first.job.chunks)
        per_chunk = first.job.chunks[0].estimated_cost
        assert per_chunk > 0
    with BatchServer(delay=60) as server:
        capped = submit({**_rate_args(data, server.url, tmp_path / "o.jsonl"), "max_cost": per_chunk * 2.5},
                        cache_dir=tmp_path / "d", detach=True)
        assert len(server.batches) == 2  # the third would pass the budget with two uncollected
        assert capped.job.stopped and "--max-cost" in capped.job.stopped


ANTHROPIC = "anthropic/claude-3-5-haiku-20241022"


def test_anthropic_message_batches(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:30])
    with BatchServer(expire_first=True) as server:
        outcome = submit({**_rate_args(data, server.url, tmp_path / "out.jsonl"), "model": ANTHROPIC},
                         cache_dir=tmp_path / "c", poll_seconds=0.05, api_key="sk-ant-test-123456")
        assert outcome.done and outcome.job.provider == "anthropic"
        # the first batch ended half expired (Anthropic reports it as ended; the counts tell): only
        # its unanswered half went again
        assert len(server.message_batches) == 2 and len(server.created) == 30
        assert sum(v == 2 for v in server.created.values()) == 15 and max(server.created.values()) == 2
        first = server.message_batches["msgbatch_0001"]["_requests"][0]["params"]
        assert first["model"] == "claude-3-5-haiku-20241022" and first["max_tokens"] == 256
        assert "system" not in first or isinstance(first["system"], str)
    written = _lines(tmp_path / "out.jsonl")
    assert len(written) == 30 and all(r["alpagasus_status"] == "ok" for r in written)
    with open_cache(tmp_path / "c") as cache:
        assert {r["transport"] for r in cache.records()} == {"batch"}


def test_anthropic_resume_finds_the_batch_the_journal_missed(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:12])
    with BatchServer() as server:
        env = dict(os.environ, PYTHONPATH=str(ROOT), WINNOW_CACHE_DIR=str(tmp_path / "c"),
                   WINNOW_FAULT_KILL_AT="created", ANTHROPIC_API_KEY="sk-ant-test-123456")
        argv = [sys.executable, "-m", "winnow", "rate", str(data), "--judge", "alpagasus", "--model", ANTHROPIC,
                "--api-base", server.url, "-o", str(tmp_path / "o.jsonl"), "--batch", "--poll-seconds", "0.05", "-q"]
        assert subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=120).returncode == -9
        (job,) = list_jobs(tmp_path / "c")
        assert job.chunks[0].batch_id is None and len(server.message_batches) == 1
        del env["WINNOW_FAULT_KILL_AT"]
        done = subprocess.run([sys.executable, "-m", "winnow", "batch", "collect", job.job, "--wait",
                               "--poll-seconds", "0.05"], cwd=tmp_path, env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, done.stderr.decode()
        assert len(server.message_batches) == 1 and max(server.created.values()) == 1
    assert all(r["alpagasus_status"] == "ok" for r in _lines(tmp_path / "o.jsonl"))


def test_the_enqueued_token_limit_queues_the_next_chunks(alpaca_rows, write_jsonl, tmp_path, monkeypatch):
    from winnow.batch.openai_api import OpenAIBatches

    monkeypatch.setattr(OpenAIBatches, "max_requests", 10)
    data = write_jsonl(alpaca_rows[:40])
    with BatchServer(token_limit=20, delay=0.2) as server:  # two 10-request batches in flight at most
        outcome = submit(_rate_args(data, server.url, tmp_path / "out.jsonl"), cache_dir=tmp_path / "c",
                         poll_seconds=0.05)
        assert outcome.done
        refused = [b for b in server.batches.values() if b["status"] == "failed"]
        assert refused and all(b["errors"]["data"][0]["code"] == "token_limit_exceeded" for b in refused)
        assert len(server.answered) == 40 and max(server.answered.values()) == 1  # each request paid once
    assert all(r["alpagasus_status"] == "ok" for r in _lines(tmp_path / "out.jsonl"))


def test_azure_batches(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:12])
    with BatchServer() as server:
        resource = server.url.removesuffix("/v1")  # Azure: https://RESOURCE.openai.azure.com
        outcome = submit({**_rate_args(data, resource, tmp_path / "out.jsonl"), "model": "azure/judge-deployment"},
                         cache_dir=tmp_path / "c", poll_seconds=0.05, api_key="azure-key-123456789")
        assert outcome.done and outcome.job.provider == "azure"
        assert server.api_versions == {"2024-10-21"} and max(server.created.values()) == 1
        (batch,) = server.batches.values()
        assert batch["endpoint"] == "/chat/completions"
        line = json.loads(server.files[batch["input_file_id"]].splitlines()[0])
        assert line["url"] == "/chat/completions" and line["body"]["model"] == "judge-deployment"
    assert all(r["alpagasus_status"] == "ok" for r in _lines(tmp_path / "out.jsonl"))
