"""Ctrl-C and SIGTERM on a running ``winnow rate``: stop sending, let in-flight calls finish
(or cancel them after ``grace_seconds``), cache every finished judgment, say how many are cached
and how to resume, exit non-zero.  A second Ctrl-C exits at once; the cache stays whole.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakeserver import FakeServer
from tests.test_reliability_support import (
    ROOT,
    alpaca,
    cached_records,
    child_env,
    group_members,
    kill_group,
    launch,
    rate_argv,
    record_figures,
    run,
    wait_until,
    write_jsonl,
)

ROWS = 600
CONCURRENCY = 16
_figures: dict[str, object] = {}


def _interrupt(tmp_path: Path, srv: FakeServer, signals: list[int], after: int = 120) -> tuple[int, str, float]:
    data = write_jsonl(tmp_path / "rows.jsonl", alpaca(ROWS))
    argv = rate_argv(data, srv.url, tmp_path / "cache", tmp_path / "out.jsonl", "-c", str(CONCURRENCY))
    proc = launch(argv)
    assert wait_until(lambda: srv.total >= after or proc.poll() is not None, 60)
    assert proc.poll() is None, "run finished before the signal"
    kill_group(proc, signals[0])
    sent_at = time.monotonic()
    for sig in signals[1:]:
        time.sleep(0.3)
        sent_at = time.monotonic()
        kill_group(proc, sig)
    try:
        _, stderr = proc.communicate(timeout=20)
    except Exception:
        kill_group(proc)
        raise
    took = time.monotonic() - sent_at
    assert wait_until(lambda: not group_members(proc.pid), 5)
    assert not (tmp_path / "out.jsonl").exists()
    return proc.returncode, stderr.decode(), took


def _resume(tmp_path: Path, srv: FakeServer, cached: int) -> None:
    srv.reset()
    data = tmp_path / "rows.jsonl"
    done = run(rate_argv(data, srv.url, tmp_path / "cache", tmp_path / "out.jsonl", "-c", str(CONCURRENCY)))
    assert done.returncode == 0, done.stderr
    assert srv.total == ROWS - cached  # requests only for what was missing
    assert len(cached_records(tmp_path / "cache")) == ROWS
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == ROWS


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_first_signal_stops_dispatch_caches_finished_and_says_how_to_resume(tmp_path: Path, sig: int) -> None:
    with FakeServer(latency=(0.02, 0.05)) as srv:
        code, stderr, took = _interrupt(tmp_path, srv, [sig])
        assert code == 130, stderr
        assert took < 5.0 + 2.0  # grace_seconds + start-up slack
        assert f"interrupted by {signal.Signals(sig).name}" in stderr
        stats = srv.stats()
        records = cached_records(tmp_path / "cache")
        # every call that got a reply was let finish and cached: nothing lost
        assert len(records) == stats["distinct"] == stats["total"]
        assert len(records) < ROWS
        match = re.search(r"(\d+) judgments cached", stderr)
        assert match and int(match.group(1)) == len(records), stderr
        assert "Resume with:" in stderr and "winnow rate " in stderr and "--cache-dir" in stderr
        _resume(tmp_path, srv, len(records))
    _figures[signal.Signals(sig).name] = {"cached_at_stop": len(records), "exit_s": round(took, 2),
                                          "records_lost": 0}


def test_second_ctrl_c_exits_at_once_and_the_cache_stays_whole(tmp_path: Path) -> None:
    # slow replies: the first Ctrl-C would wait up to grace_seconds for them; the second must not
    with FakeServer(latency=(0.5, 3.0)) as srv:
        code, stderr, took = _interrupt(tmp_path, srv, [signal.SIGINT, signal.SIGINT], after=40)
        assert code == 130, stderr
        assert took < 1.5, took
        stats = srv.stats()
        records = cached_records(tmp_path / "cache")  # opens; every record parses
        assert stats["distinct"] - len(records) <= CONCURRENCY  # only calls in flight are lost
        srv.latency = (0.02, 0.05)
        _resume(tmp_path, srv, len(records))
    _figures["double_SIGINT"] = {"exit_s": round(took, 2), "cached_at_stop": len(records),
                                 "in_flight_lost": stats["distinct"] - len(records), "records_lost": 0}


def test_calls_that_hang_past_the_grace_period_are_cancelled(tmp_path: Path) -> None:
    """In-flight calls that never answer are cancelled after grace_seconds (5 s); the run still
    exits 130 with everything that did finish cached."""
    with FakeServer(latency=0.02) as srv:
        data = write_jsonl(tmp_path / "rows.jsonl", alpaca(ROWS))
        proc = launch(rate_argv(data, srv.url, tmp_path / "cache", None, "-c", str(CONCURRENCY)))
        assert wait_until(lambda: srv.total >= 60 or proc.poll() is not None, 60)
        srv.latency = 60.0  # from now on every reply hangs
        # wait until every slot holds a request sent *after* the change: ones sent before it
        # still answer quickly and would let the run stop without any grace period
        sent_before = srv.total
        assert wait_until(lambda: srv.total >= sent_before + CONCURRENCY and srv.in_flight >= CONCURRENCY, 20), (
            srv.in_flight)
        kill_group(proc, signal.SIGTERM)
        started = time.monotonic()
        _, stderr = proc.communicate(timeout=30)
        took = time.monotonic() - started
        assert proc.returncode == 130, stderr
        assert 4.0 < took < 5.0 + 2.5, (took, stderr)  # waited the grace period, then cancelled
        assert wait_until(lambda: not group_members(proc.pid), 5)
        records = cached_records(tmp_path / "cache")
        served = sum(srv.served_counts().values())
        assert served - srv.in_flight <= len(records) <= served
    _figures["hang_at_SIGTERM"] = {"exit_s": round(took, 2), "cancelled_in_flight": CONCURRENCY}
    record_figures("signals", _figures)


def test_the_printed_resume_command_runs_as_pasted_with_an_api_key(tmp_path: Path) -> None:
    """The resume line hides the key as "$API_KEY", which a shell must expand: it was printed
    single-quoted, so pasting it sent the literal text $API_KEY and got HTTP 401."""
    key = "sk-RIGHTKEY-abc123456789"
    with FakeServer(latency=(0.02, 0.05), api_key=key) as srv:
        data = write_jsonl(tmp_path / "rows.jsonl", alpaca(ROWS))
        proc = launch(rate_argv(data, srv.url, tmp_path / "cache", tmp_path / "out.jsonl", "-c", str(CONCURRENCY),
                                "--api-key", key))
        assert wait_until(lambda: srv.total >= 60 or proc.poll() is not None, 60)
        kill_group(proc, signal.SIGINT)
        _, stderr_bytes = proc.communicate(timeout=20)
        stderr = stderr_bytes.decode()
        assert proc.returncode == 130 and key not in stderr, stderr
        line = stderr.split("Resume with:\n", 1)[1].strip().splitlines()[0]
        assert line.startswith("winnow rate ") and '--api-key "$API_KEY"' in line
        pasted = line.replace("winnow ", f"{sys.executable} -m winnow ", 1)
        done = subprocess.run(["bash", "-c", pasted], cwd=ROOT, env=child_env(API_KEY=key), capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert len(cached_records(tmp_path / "cache")) == ROWS
        assert len((tmp_path / "out.jsonl").read_text().splitlines()) == ROWS
