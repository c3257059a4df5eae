"""Two ``winnow rate`` processes, overlapping files, one cache directory, at the same time: no
corruption, no lost record, every row judged by both; a duplicate request is only ever sent while
the same prompt was in flight in the other process (never for a judgment already cached)."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.fakeserver import FakeServer, default_responder, hash_messages
from tests.test_reliability_support import (
    alpaca,
    cached_records,
    launch,
    rate_argv,
    record_figures,
    write_jsonl,
)

CONCURRENCY = 16
SLACK_S = 1.0  # reply on the wire + cache write + the other process's look-up, on a loaded machine


def test_two_processes_share_one_cache_without_loss(tmp_path: Path) -> None:
    finished_at: dict[str, float] = {}

    def responder(body: dict[str, Any]) -> str:
        finished_at.setdefault(hash_messages(body.get("messages")), time.time())
        return default_responder(body)

    rows = alpaca(1200)
    a = write_jsonl(tmp_path / "a.jsonl", rows[:800])
    b = write_jsonl(tmp_path / "b.jsonl", rows[400:])
    cache = tmp_path / "cache"
    with FakeServer(latency=(0.02, 0.05), responder=responder, record=True) as srv:
        procs = [launch(rate_argv(p, srv.url, cache, tmp_path / f"{p.stem}.out.jsonl", "-c", str(CONCURRENCY)))
                 for p in (a, b)]
        for proc in procs:
            _, stderr = proc.communicate(timeout=120)
            assert proc.returncode == 0, stderr.decode()
        requests = srv.requests
    for name in ("a", "b"):
        lines = (tmp_path / f"{name}.out.jsonl").read_text().splitlines()
        assert len(lines) == 800 and all('"alpagasus_status":"ok"' in line.replace(" ", "") for line in lines)
    records = cached_records(cache)  # opens; every record parses
    assert len(records) == 1200 and len({r["key"] for r in records}) == 1200  # no lost record
    arrivals: dict[str, list[float]] = defaultdict(list)
    for req in requests:
        arrivals[hash_messages(req.body["messages"])].append(req.t)
    duplicates = 0
    for digest, times in arrivals.items():
        for t in sorted(times)[1:]:
            duplicates += 1
            assert t <= finished_at[digest] + SLACK_S, "re-sent a judgment the other process had cached"
    assert duplicates <= 400  # at most the overlap, and only while in flight in the other process
    record_figures("shared_cache", {"processes": 2, "rows_each": 800, "overlap": 400, "records": len(records),
                                    "records_lost": 0, "duplicate_requests": duplicates})
