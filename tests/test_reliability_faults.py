"""A storm of server faults on 3,000 rows: zero crashes, every row ``ok`` or ``judge_failed`` with
its reason; then what a failure caches, a plain re-run, and ``--retry-failed``.

Caching rule under test (RELIABILITY.md): a reply that came back and could not be parsed as a
judgment is a judgment (cached with its raw text, status judge_failed); a request that never got a
usable reply after all retries (429/5xx/timeouts/drops/malformed HTTP bodies) is not cached, so
the next run asks again.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.fakeserver import FakeServerProcess
from tests.test_reliability_support import (
    ROOT,
    alpaca,
    cached_records,
    child_env,
    kill_group,
    record_figures,
    write_jsonl,
)

ROWS = 3000
FAULTS = {"429": 0.10, "500": 0.05, "malformed": 0.02, "hang": 0.01, "drop": 0.01}
NO_429 = {k: v for k, v in FAULTS.items() if k != "429"}
STORM_DEADLINE_S = 45
_STORM = """
import json, sys
import winnow.engine.limiter as limiter
from winnow.api import rate
from winnow.engine import EngineSettings
made = []
class Spy(limiter.Limiter):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        made.append(self)
limiter.Limiter = Spy
import winnow.engine.sending
winnow.engine.sending.Limiter = Spy
res = rate(sys.argv[1], ["alpagasus"], "openai/fake-model", api_base=sys.argv[2], cache_dir=sys.argv[3],
           settings=EngineSettings(concurrency=64, timeout=1.0, backoff_initial=0.01, backoff_max=0.2))
lim = made[-1]
json.dump({"rows": res.rows, "elapsed": res.stats.elapsed, "requests": res.stats.requests,
           "limiter": {"refusals": lim.refusals, "cuts": lim.cuts, "limit": lim.limit,
                       "pace": lim.pace and round(lim.pace.rate, 1)}}, open(sys.argv[4], "w"))
"""


def test_full_fault_storm_with_429s_finishes_without_a_crash(tmp_path: Path) -> None:
    """The spec'd mix, 3,000 rows, the API in a subprocess so a stall is caught by a deadline.

    Random 429s must not be taken for a rate limit: every one pauses the run for its Retry-After,
    but only a 429 that ends a long run of admitted requests (or dense refusals) cuts the window
    and learns a pace (engine/limiter.py), so the window stays near ``-c`` and the run finishes.
    """
    data = write_jsonl(tmp_path / "rows.jsonl", alpaca(ROWS))
    out = tmp_path / "result.json"
    with FakeServerProcess(latency=0.005, faults=FAULTS, retry_after=0.1, hang_seconds=3.0, seed=11) as srv:
        proc = subprocess.Popen([sys.executable, "-c", _STORM, str(data), srv.url, str(tmp_path / "c"), str(out)],
                                cwd=ROOT, env=child_env(), start_new_session=True, stderr=subprocess.PIPE)
        try:
            _, stderr = proc.communicate(timeout=STORM_DEADLINE_S)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.communicate()
            stats = srv.stats()
            record_figures("faults_429_storm", {"finished": False, "deadline_s": STORM_DEADLINE_S,
                                                "requests_by_deadline": stats["total"], "faults": stats["faults"]})
            raise AssertionError(f"storm unfinished after {STORM_DEADLINE_S}s: {stats['total']} requests") from None
        stats = srv.stats()
    assert proc.returncode == 0, stderr.decode()[-3000:]  # zero crashes
    result = json.loads(out.read_text())
    rows, lim = result["rows"], result["limiter"]
    statuses = Counter(r["alpagasus_status"] for r in rows)
    assert len(rows) == ROWS and set(statuses) <= {"ok", "judge_failed"}
    assert all(r["alpagasus_error"] for r in rows if r["alpagasus_status"] == "judge_failed")
    injected = dict(stats["faults"])
    assert injected.get("429", 0) > 250 and injected.get("hang", 0) > 10  # the storm really happened
    assert lim["refusals"] == injected["429"]  # every 429 reached the limiter (and paused the run)
    assert lim["cuts"] <= 8, lim  # random refusals are not congestion: the window did not collapse
    record_figures("faults_429_storm", {
        "finished": True, "rows": ROWS, "requests": stats["total"], "faults_by_kind": injected,
        "rows_ok": statuses["ok"], "rows_judge_failed": statuses["judge_failed"],
        "seconds": round(result["elapsed"], 1), "limiter": lim,
    })


def _settings(**kw: object):  # type: ignore[no-untyped-def]
    from winnow.engine import EngineSettings

    return EngineSettings(concurrency=64, timeout=1.0, backoff_initial=0.01, backoff_max=0.2, **kw)  # type: ignore[arg-type]


def _unique_marks(rows: list[dict[str, str]], count: int, start: int) -> list[str]:
    marks: list[str] = []
    for row in rows[start:]:
        mark = row["instruction"][:48]
        if len(mark) >= 20 and sum(mark in r["instruction"] or mark in r["input"] or mark in r["output"]
                                   for r in rows) == 1:
            marks.append(mark)
        if len(marks) == count:
            return marks
    raise AssertionError("not enough distinctive rows")


def test_fault_storm_then_rerun_then_retry_failed(tmp_path: Path) -> None:
    """500s, malformed bodies, hangs past --timeout and drops on 3,000 rows (with 429s: see above)."""
    from winnow.api import rate

    rows = alpaca(ROWS)
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    unparseable = _unique_marks(rows, 5, 100)  # the model answers, but never with a score
    unreachable = _unique_marks(rows, 3, 2000)  # every attempt is a 500
    cache = tmp_path / "cache"

    def go(srv: FakeServerProcess, **kw: object):  # type: ignore[no-untyped-def]
        return rate(data, ["alpagasus"], "openai/fake-model", api_base=srv.url, cache_dir=cache,
                    settings=_settings(**kw))

    with FakeServerProcess(latency=0.005, faults=NO_429, retry_after=0.1, hang_seconds=3.0, seed=11) as srv:
        srv.configure(script=[*({"match": m, "reply": "I would rather not say."} for m in unparseable),
                              {"match": "could not be used", "reply": "Still no."},
                              *({"match": m, "fault": "500"} for m in unreachable)])
        storm = go(srv)  # zero crashes: returns normally
        stats = srv.stats()
        statuses = Counter(r["alpagasus_status"] for r in storm.rows)
        assert set(statuses) <= {"ok", "judge_failed"} and sum(statuses.values()) == ROWS
        failed = [r for r in storm.rows if r["alpagasus_status"] == "judge_failed"]
        assert all(r["alpagasus_error"] for r in failed)  # every failure says why
        by_mark = {m: next(r for r in storm.rows if m in r["instruction"]) for m in unparseable + unreachable}
        for mark in unparseable:
            assert by_mark[mark]["alpagasus_status"] == "judge_failed"
        for mark in unreachable:
            assert by_mark[mark]["alpagasus_error"].startswith("request failed: no reply after 7 attempts")
        # failures beyond the scripted ones would be rows whose 7 attempts all hit random faults
        unlucky = len(failed) - len(unparseable) - len(unreachable)
        assert 0 <= unlucky <= 3, Counter(r["alpagasus_error"][:40] for r in failed)
        injected = dict(stats["faults"])
        assert injected.get("500", 0) > 100 and injected.get("hang", 0) > 10 and injected.get("drop", 0) > 10

        # what the storm cached: every reply that came back, parseable or not; no unreached request
        records = {r["sample_id"]: r for r in cached_records(cache)}
        assert len(records) == ROWS - len(unreachable) - unlucky
        bad = [r for r in records.values() if r["status"] == "judge_failed"]
        assert len(bad) == len(unparseable)
        assert all(r["raw"] == "Still no." and r["reasks"][0]["raw"] == "I would rather not say." for r in bad)

        # a plain re-run, faults off: requests only for rows without a cached judgment
        srv.configure(faults={}, script=[])
        srv.reset()
        rerun = go(srv)
        assert srv.stats()["total"] == len(unreachable) + unlucky
        assert Counter(r["alpagasus_status"] for r in rerun.rows)["judge_failed"] == len(unparseable)

        # --retry-failed re-asks exactly the cached judge_failed rows (the script still refuses)
        srv.reset()
        srv.configure(script=[*({"match": m, "reply": "Score: 4\nFine now."} for m in unparseable)])
        retried = go(srv, retry_failed=True)
        assert srv.stats()["total"] == len(unparseable)
        assert all(r["alpagasus_status"] == "ok" for r in retried.rows)

    record_figures("faults", {
        "rows": ROWS, "requests": stats["total"], "faults_injected": sum(injected.values()),
        "faults_by_kind": injected, "crashes": 0, "rows_ok": statuses["ok"],
        "rows_judge_failed": statuses["judge_failed"], "scripted_unparseable": len(unparseable),
        "scripted_unreachable": len(unreachable), "unlucky_request_failures": unlucky,
        "rerun_requests": len(unreachable) + unlucky, "retry_failed_requests": len(unparseable),
        "seconds_storm": round(storm.stats.elapsed, 1),
    })
