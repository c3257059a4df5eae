"""Crash safety: ``kill -9`` of the whole ``winnow rate`` process group at random moments.

The engine writes each judgment to the cache the moment its call finishes (runner.py) and the
output through a temp file + ``os.replace`` (writers.py), so a kill may only lose calls that were
in flight, and a relaunch must finish with output byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.fakeserver import FakeServer
from tests.test_reliability_support import (
    alpaca,
    cached_records,
    group_members,
    kill_group,
    launch,
    rate_argv,
    record_figures,
    run,
    wait_until,
    write_jsonl,
)

ROWS = 2000
CONCURRENCY = 16
KILLS = 11


def test_kill9_at_random_moments_then_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    seed = int(os.environ.get("RELIABILITY_SEED") or time.time_ns() % 100_000)
    rng = random.Random(seed)
    data = write_jsonl(tmp_path / "rows.jsonl", alpaca(ROWS))
    with FakeServer(latency=(0.02, 0.05)) as srv:
        ref_out = tmp_path / "reference.jsonl"
        ref = run(rate_argv(data, srv.url, tmp_path / "ref-cache", ref_out, "-c", str(CONCURRENCY)))
        assert ref.returncode == 0, ref.stderr
        srv.reset()

        cache, out = tmp_path / "cache", tmp_path / "out.jsonl"
        argv = rate_argv(data, srv.url, cache, out, "-c", str(CONCURRENCY))
        kills: list[dict[str, int]] = []
        while len(kills) < KILLS:
            base = srv.total
            threshold = rng.randint(10, 150)
            proc = launch(argv)
            reached = wait_until(lambda b=base, t=threshold, p=proc: srv.total - b >= t or p.poll() is not None, 60)
            assert reached and proc.poll() is None, f"run finished before kill {len(kills) + 1} (seed {seed})"
            before_total, before_in_flight = srv.total, srv.in_flight
            kill_group(proc)
            proc.wait(10)
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]
            # no process of the group may outlive the kill
            assert wait_until(lambda p=proc: not group_members(p.pid), 5), group_members(proc.pid)
            assert not out.exists(), "a killed run left a file at the output path"
            time.sleep(0.1)  # requests already on the wire reach the server's counters
            stats = srv.stats()
            records = cached_records(cache)  # opens, and every record parses
            lost = stats["distinct"] - len(records)  # sent, never recorded: the calls in flight
            assert 0 <= lost <= CONCURRENCY, (lost, seed)
            kills.append({"threshold": threshold, "lost_in_flight": lost,
                          "server_in_flight_bound": before_in_flight + stats["total"] - before_total})

        final = run(argv, timeout=120)
        assert final.returncode == 0, final.stderr
        stats = srv.stats()

    assert out.read_bytes() == ref_out.read_bytes()  # same rows, order, scores
    records = cached_records(cache)
    assert len(records) == ROWS and stats["distinct"] == ROWS
    wasted = stats["total"] - stats["distinct"]
    in_flight_at_kills = sum(k["lost_in_flight"] for k in kills)
    assert wasted <= in_flight_at_kills, (wasted, kills, seed)
    record_figures("kill9", {
        "seed": seed, "rows": ROWS, "kills_survived": len(kills), "requests_total": stats["total"],
        "requests_wasted": wasted, "in_flight_at_kills": in_flight_at_kills,
        "server_in_flight_bound": sum(k["server_in_flight_bound"] for k in kills),
        "records_lost": ROWS - len(records), "output_identical": True,
    })


def test_writer_replaces_atomically_and_a_failed_write_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash before the rename leaves the previous complete file and no stray temp file."""
    import winnow.data.writers as writers

    target = tmp_path / "out.jsonl"
    writers.write_rows([{"a": 1}], target, "jsonl")
    renames: list[tuple[str, str]] = []
    real_replace = os.replace
    monkeypatch.setattr(writers.os, "replace", lambda a, b: (renames.append((str(a), str(b))), real_replace(a, b)))
    writers.write_rows([{"a": 2}] * 3, target, "jsonl")
    assert renames and renames[-1][1] == str(target) and Path(renames[-1][0]).parent == tmp_path
    assert target.read_bytes() == b'{"a":2}\n' * 3

    def crash(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writers.os, "fsync", crash)
    with pytest.raises(OSError):
        writers.write_rows([{"a": 3}] * 1000, target, "jsonl")
    assert target.read_bytes() == b'{"a":2}\n' * 3  # the old, complete file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]  # temp file removed
