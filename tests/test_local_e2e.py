"""End to end on the real local judge: llama.cpp's server with SmolLM2-135M-Instruct.

One server for the session (tests/localmodel.py); the CLI tests start their own through
``--model local`` and check that nothing survives winnow, however winnow ends.
Rows are the 20 shortest rows among the first 400 of tests/data/alpaca_3k.json, to keep
the judge's CPU time (and the suite) small; the prompt template dominates the length anyway.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.localmodel import fixture_settings, local_gguf, local_server, parent_of, server_processes
from winnow.api import open_cache, rate
from winnow.engine.config import EngineSettings
from winnow.local import LocalServer, wait_until_ready

__all__ = ["local_gguf", "local_server"]  # fixtures used by name below

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def short_rows(alpaca_rows: list[dict], n: int) -> list[dict]:
    pool = sorted(alpaca_rows[:400], key=lambda r: len(r["instruction"]) + len(r["input"]) + len(r["output"]))
    return pool[:n]


def test_alpagasus_structured_on_the_real_model(local_server: LocalServer, alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(short_rows(alpaca_rows, 20))
    cache_dir = tmp_path / "cache"
    started = time.monotonic()
    first = rate(
        data, ["alpagasus"], "local", api_base=local_server.api_base, structured=True,
        cache_dir=cache_dir, output=tmp_path / "out.jsonl", settings=EngineSettings(concurrency=2),
    )
    elapsed = time.monotonic() - started
    statuses = [row["alpagasus_status"] for row in first.rows]
    assert set(statuses) <= {"ok", "judge_failed"}, statuses
    ok = statuses.count("ok")
    print(f"\nalpagasus on SmolLM2: {ok}/20 ok, {elapsed:.1f}s, load {os.getloadavg()[0]:.1f}")
    # grammar-constrained JSON makes a parseable reply the norm even for a 135M model
    assert ok >= 16, statuses
    for row in first.rows:
        if row["alpagasus_status"] == "ok":
            assert 0.0 <= row["alpagasus_score"] <= 5.0
    assert first.stats.calls == 20
    with open_cache(cache_dir) as cache:
        records = list(cache.records())
    assert len(records) == 20
    for record in records:
        assert record["status"] in ("ok", "judge_failed")
        assert record["raw"].strip(), record  # the raw reply is kept, parsed or not
        assert record["model"] == "openai/SmolLM2-135M-Instruct.Q4_1.gguf"
        assert record["api_base"] == "local:SmolLM2-135M-Instruct.Q4_1.gguf"  # not the port
        if record["status"] == "ok":
            assert json.loads(record["raw"])["score"] == record["parsed"]["score"]
    second = rate(data, ["alpagasus"], "local", api_base=local_server.api_base, structured=True,
                  cache_dir=cache_dir)
    assert second.stats.calls == 0 and second.stats.requests == 0
    assert second.stats.cache_hits == 20
    assert [r["alpagasus_score"] for r in second.rows] == [r["alpagasus_score"] for r in first.rows]


def test_deita_direct_on_the_real_model_keeps_logprobs(local_server: LocalServer, alpaca_rows, write_jsonl,
                                                      tmp_path):
    """DEITA direct asks for a bare digit and reads the expectation over the digit log-probs.

    SmolLM2-135M does not follow "reply with a single digit" (it opens with "The answer to
    the..." on every row we probed), so its direct scores mostly end judge_failed with the
    reply kept.  What must hold whatever the model says: llama.cpp returned top-20 log-probs
    through litellm, they are in the record, and any ok score is the digit expectation.
    """
    data = write_jsonl(short_rows(alpaca_rows, 1))
    result = rate(data, ["deita-complexity"], "local", api_base=local_server.api_base,
                  cache_dir=tmp_path / "cache")
    for row in result.rows:
        for name in ("deita_complexity",):
            assert row[f"{name}_status"] in ("ok", "judge_failed")
            if row[f"{name}_status"] == "ok" and row[f"{name}_method"] == "logprobs":
                assert 1.0 < row[f"{name}_score"] < 6.0 and row[f"{name}_score"] != int(row[f"{name}_score"])
            elif row[f"{name}_status"] == "judge_failed":
                assert "score" in row[f"{name}_error"]
    with open_cache(tmp_path / "cache") as cache:
        records = list(cache.records())
    assert len(records) == 1
    for record in records:
        assert record["raw"].strip()
        assert record["params"]["top_logprobs"] == 20
        first = record["logprobs"][0]  # top_logprobs came back from llama.cpp, per position
        assert len(first["top"]) >= 10 and first["token"] in first["top"]
        assert all(lp <= 0.0 for lp in first["top"].values())
        assert "".join(p["token"] for p in record["logprobs"]) == record["raw"][: len("".join(
            p["token"] for p in record["logprobs"]))]
        if record["status"] == "ok" and record["parsed"]["method"] == "logprobs":
            probs = record["parsed"]["digit_probs"]
            assert abs(sum(probs.values()) - 1.0) < 1e-6
            assert abs(sum(int(k) * p for k, p in probs.items()) - record["parsed"]["score"]) < 1e-6


def test_instag_structured_tags(local_server: LocalServer, alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(short_rows(alpaca_rows, 1))
    result = rate(data, ["instag"], "local", api_base=local_server.api_base, structured=True,
                  cache_dir=tmp_path / "cache", settings=EngineSettings(concurrency=2))
    statuses = [row["instag_status"] for row in result.rows]
    assert set(statuses) <= {"ok", "judge_failed"}
    assert "ok" in statuses, [row["instag_error"] for row in result.rows]
    for row in result.rows:
        if row["instag_status"] == "ok":
            assert row["instag_tags"] and all(t == t.strip().lower() for t in row["instag_tags"])


# ---------------------------------------------------------------- the CLI, and no orphans
def _winnow(args: list[str], tmp_path: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, WINNOW_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    env.setdefault("WINNOW_LOCAL_N_THREADS", str(fixture_settings().n_threads))
    return subprocess.Popen(
        [sys.executable, "-c", "from winnow.cli import main; main()", *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _wait_for_server_of(pid: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child, _ in server_processes().items():
            if parent_of(child) == pid:
                return child
        time.sleep(0.1)
    raise AssertionError(f"winnow (pid {pid}) started no local server within {timeout}s")


def _gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid not in server_processes():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def cli_data(local_gguf, alpaca_rows, write_jsonl) -> Path:
    return write_jsonl(short_rows(alpaca_rows, 10)[8:10], "cli.jsonl")


def test_cli_rate_local_runs_and_leaves_no_server(cli_data, tmp_path, monkeypatch):
    proc = _winnow(["rate", str(cli_data), "--judge", "alpagasus", "--model", "local", "--structured",
                    "-o", "out.jsonl", "-q"], tmp_path)
    server = _wait_for_server_of(proc.pid)
    _out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    # judgments, not statuses: structured output makes SmolLM2's reply parse (>= 80% in the suite)
    assert [r["alpagasus_status"] for r in rows] == ["ok", "ok"], [r["alpagasus_error"] for r in rows]
    assert all(0.0 <= r["alpagasus_score"] <= 5.0 for r in rows)
    assert _gone(server, timeout=2), "the server outlived a finished winnow rate"

    # the same rows again, all in the cache: answered without starting a server at all
    def no_server(self: LocalServer) -> None:
        raise AssertionError("a fully cached re-run started the local server")

    monkeypatch.setattr(LocalServer, "start", no_server)
    again = rate(cli_data, ["alpagasus"], "local", structured=True, cache_dir=tmp_path / "cache")
    assert again.stats.cache_hits == 2 and again.stats.calls == 0
    assert [r["alpagasus_score"] for r in again.rows] == [r["alpagasus_score"] for r in rows]
    with pytest.raises(AssertionError, match="started the local server"):  # a miss does start it
        rate(cli_data, ["alpagasus"], "local", structured=False, cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("when", ["loading", "serving"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_cli_leaves_no_server(sig, when, cli_data, tmp_path):
    proc = _winnow(["rate", str(cli_data), "--judge", "alpagasus", "--model", "local", "--structured",
                    "--no-cache", "-q"], tmp_path)
    server = _wait_for_server_of(proc.pid)
    if when == "serving":  # the server answers and the first judgment is in flight
        port = server_processes()[server].split("--port ")[1].split()[0]
        wait_until_ready(f"http://127.0.0.1:{port}/v1", None, timeout=60)
        time.sleep(0.5)
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode != 0 if sig == signal.SIGINT else proc.returncode == -9, proc.returncode
    assert _gone(server), f"server {server} survived {sig.name} of winnow: {server_processes()}"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_local_prints_a_working_api_base_and_stops_cleanly(sig, local_gguf, write_jsonl, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), WINNOW_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.Popen(
        [sys.executable, "-c", "import winnow.cli.serve; from winnow.cli import main; main()",
         "serve-local", "--port", "0", "--threads", str(fixture_settings().n_threads or 1)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()  # printed once the server answers
        assert line.startswith("--model local --api-base http://127.0.0.1:"), line
        api_base = line.split()[-1]
        server = _wait_for_server_of(proc.pid, timeout=5)
        if sig == signal.SIGINT:  # once is enough: the printed address serves --model local
            data = write_jsonl([{"instruction": "Add 2 and 3.", "input": "", "output": "5"}])
            result = rate(data, ["alpagasus"], "local", api_base=api_base, structured=True,
                          cache_dir=tmp_path / "c")
            assert result.stats.calls == 1 and result.rows[0]["alpagasus_status"] == "ok", result.rows[0]
        else:
            assert wait_until_ready(api_base, None, timeout=5) == local_gguf.name
    finally:
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped." in err
    assert _gone(server, timeout=2)


def test_cli_rate_local_server_killed_with_sigsegv_stops_within_5s(local_gguf, alpaca_rows, write_jsonl, tmp_path):
    """The started server dies mid-run (SIGSEGV, as a build that cannot run on the CPU does):
    winnow stops at once, exits 1 naming the signal, and keeps every finished judgment."""
    data = write_jsonl(short_rows(alpaca_rows, 12), "rows.jsonl")
    proc = _winnow(["rate", str(data), "--judge", "alpagasus", "--model", "local", "--structured",
                    "--concurrency", "1", "-o", "out.jsonl", "-q"], tmp_path)
    server = _wait_for_server_of(proc.pid)
    cache_dir = tmp_path / "cache"
    before = 0
    deadline = time.monotonic() + 120
    while before < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if cache_dir.exists():
            with open_cache(cache_dir) as cache:
                before = len(cache)
    assert before >= 2, "the local judge finished fewer than 2 judgments in 120 s"
    os.kill(server, signal.SIGSEGV)
    killed = time.monotonic()
    _out, err = proc.communicate(timeout=60)
    stopped = time.monotonic() - killed
    message = err.decode()
    assert proc.returncode == 1, message
    assert stopped < 5.0, f"winnow took {stopped:.1f}s to stop after its server died"
    assert "SIGSEGV" in message and "SmolLM2-135M-Instruct" in message and "server log (kept)" in message
    assert "request failed" not in message and not (tmp_path / "out.jsonl").exists()
    with open_cache(cache_dir) as cache:
        records = list(cache.records())
    assert len(records) >= before  # every judgment finished before the kill is in the cache
    assert sum(r["status"] == "ok" for r in records) >= 0.8 * len(records)
    print(f"\nstopped {stopped:.2f}s after SIGSEGV; {len(records)} judgments cached ({before} before the kill)")
    kept = Path(message.split("server log (kept): ")[1].split(",")[0])
    assert kept.is_file()
    kept.unlink()
