"""Engine throughput: bare aiohttp (the ceiling) vs ``winnow rate`` (fast, litellm) vs Bespoke Curator.

One run, interleaved repeats (medians), against the fake server in its own process (0.2 s
latency).  Every contender is a child process; CPU and peak memory come from ``os.wait4``'s
resource usage of that child.  The winnow children are the real CLI (``winnow.cli.main``)
with two timers wrapped around ``winnow.api.rate`` (load + judge + write) and ``Engine.run``,
so rows/s and CPU per judgment can be given without interpreter start-up as well as with it.
Curator (if /tmp/curator-venv exists) runs ``bench/curator_child.py`` with that venv's python:
its OpenAI backend on the fake server, its cache and telemetry off, timed around ``llm(rows)``.

    python bench/throughput.py --rows 2000 --concurrency 256 --repeats 5 --cached-repeats 7

Then a fully cached re-run of the 9,229-row file, each repeat a fresh process, timed around
``winnow.api.rate`` (the whole call) and ``Engine.run``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
DATA_9K = ROOT.parent / "shared" / "data" / "alpaca_random_9k.json"
CURATOR_PY = Path("/tmp/curator-venv/bin/python")


# ----------------------------------------------------------------------------- children


def child_cli(out: str, argv: list[str]) -> None:
    """The real CLI with timers around api.rate and Engine.run; timings go to ``out`` as JSON."""
    # what ``rate`` imports lazily, and the judge's one-time set-up (pydantic models, template
    # compilation), is interpreter start-up: done before the timers, as the ceiling imports
    # aiohttp before its own
    import diskcache  # noqa: F401  # what JudgmentCache imports when it opens

    import winnow.api
    import winnow.cache
    import winnow.data
    import winnow.engine.fast_transport
    import winnow.engine.progress
    from winnow.cli import main
    from winnow.engine.runner import Engine
    from winnow.judges.registry import get_judge

    get_judge("alpagasus")
    times: dict[str, float] = {}
    real_rate, real_run = winnow.api.rate, Engine.run

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            w0, c0 = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                times[f"{name}_wall"] = time.perf_counter() - w0
                times[f"{name}_cpu"] = time.process_time() - c0

        return wrapper

    winnow.api.rate = timed("rate", real_rate)  # type: ignore[assignment]
    Engine.run = timed("engine", real_run)  # type: ignore[method-assign]
    sys.argv = ["winnow", *argv]
    try:
        main()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    finally:
        Path(out).write_text(json.dumps(times))


def child_ceiling(out: str, url: str, data: str, concurrency: int) -> None:
    """A bare aiohttp client: the same prompts, no cache, no parsing beyond json.loads."""
    import aiohttp
    import orjson

    rows = orjson.loads(Path(data).read_bytes())

    async def drive() -> tuple[int, float]:
        conn = aiohttp.TCPConnector(limit=concurrency)
        todo = iter(rows)
        ok = 0

        async def worker(session: aiohttp.ClientSession) -> None:
            nonlocal ok
            for row in todo:
                body = orjson.dumps({"model": "fake-model", "temperature": 0.0, "max_tokens": 256, "messages": [
                    {"role": "user", "content": f"{row['instruction']}\n{row['input']}\n{row['output']}"}]})
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                    reply = orjson.loads(await r.read())
                    ok += bool(reply["choices"][0]["message"]["content"])

        async with aiohttp.ClientSession(connector=conn) as session:
            t0 = time.perf_counter()
            await asyncio.gather(*(worker(session) for _ in range(concurrency)))
            return ok, time.perf_counter() - t0

    w0, c0 = time.perf_counter(), time.process_time()
    ok, secs = asyncio.run(drive())
    Path(out).write_text(json.dumps({"rate_wall": secs, "rate_cpu": time.process_time() - c0,
                                     "engine_wall": secs, "ok": ok, "all_wall": time.perf_counter() - w0}))


# ----------------------------------------------------------------------------- parent


def run_child(argv: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    fd, out = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    t0 = time.perf_counter()
    # stderr to a file, not a pipe: a chatty child (curator logs every few seconds) would fill
    # the pipe and block while we wait in wait4
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([*argv[:1], *argv[1:]] if argv[0] != "__self__" else
                                [sys.executable, __file__, *argv[1:]], env={**os.environ, **(env or {}),
                                                                            "BENCH_OUT": out},
                                stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    if status != 0:
        raise RuntimeError(f"{argv} failed ({status}): {stderr[-2000:]}")
    inner = json.loads(Path(out).read_text() or "{}")
    os.unlink(out)
    return {**inner, "proc_wall": wall, "proc_cpu": usage.ru_utime + usage.ru_stime,
            "maxrss_mib": usage.ru_maxrss / 1024}


def winnow_argv(data: Path, url: str, transport: str, concurrency: int, cache: str, out: Path) -> list[str]:
    return ["__self__", "--child-cli", "rate", str(data), "--judge", "alpagasus", "--model", "openai/fake-model",
            "--api-base", url, "--api-key", "sk-bench", "--transport", transport, "-c", str(concurrency),
            "--cache-dir", cache, "-o", str(out), "--quiet",
            "--on-bad-row", "skip"]  # the 9k file's 4 empty outputs: bad rows for AlpaGasus, reported


def summarise(name: str, runs: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    med = {k: statistics.median(r[k] for r in runs) for k in ("rate_wall", "rate_cpu", "proc_cpu", "maxrss_mib")}
    engine = statistics.median(r.get("engine_wall", r["rate_wall"]) for r in runs)  # Engine.run alone
    return {"name": name, "runs": len(runs), "rows_per_s": rows / med["rate_wall"], "engine_rows_per_s": rows / engine,
            "cpu_ms_per_row": 1000 * med["rate_cpu"] / rows, "proc_cpu_ms_per_row": 1000 * med["proc_cpu"] / rows,
            "peak_mib": med["maxrss_mib"], "each_rows_per_s": [round(rows / r["rate_wall"]) for r in runs]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip", default="", help="comma list of contenders to skip (litellm, curator)")
    p.add_argument("--cached-repeats", type=int, default=3)
    a = p.parse_args()
    from fakeserver import FakeServerProcess

    work = Path(tempfile.mkdtemp(prefix="winnow-bench-"))
    all_rows = json.loads(DATA_9K.read_text())
    data = work / "rows.json"
    data.write_text(json.dumps(all_rows[: a.rows]))
    load = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {}
    contenders = [c for c in ("ceiling", "fast", "litellm", "curator") if c not in a.skip.split(",")]
    if "curator" in contenders and not CURATOR_PY.exists():
        contenders.remove("curator")
    with FakeServerProcess(latency=a.latency) as srv:
        for rep in range(a.repeats):
            for name in contenders:
                cache = tempfile.mkdtemp(prefix=f"cache-{name}-", dir=work)
                if name == "ceiling":
                    argv = ["__self__", "--child-ceiling", srv.url + "/chat/completions", str(data), str(a.concurrency)]
                elif name == "curator":
                    argv = [str(CURATOR_PY), str(ROOT / "bench" / "curator_child.py"), srv.url, str(data),
                            str(a.concurrency), cache]
                else:
                    argv = winnow_argv(data, srv.url, name, a.concurrency, cache, work / f"out-{name}.jsonl")
                res = run_child(argv)
                results.setdefault(name, []).append(res)
                cpu, proc = 1000 * res["rate_cpu"] / a.rows, 1000 * res["proc_cpu"] / a.rows
                print(f"rep {rep} {name}: {a.rows / res['rate_wall']:.0f} rows/s, {cpu:.2f} ms CPU/row "
                      f"(process {proc:.2f}), {res['maxrss_mib']:.0f} MiB", flush=True)
        summary = [summarise(n, results[n], a.rows) for n in contenders]
        # the cached re-run of the 9,229-row file: fill once, then time re-runs inside the process
        cache9k = tempfile.mkdtemp(prefix="cache-9k-", dir=work)
        srv.configure(latency=0.0)
        run_child(winnow_argv(DATA_9K, srv.url, "fast", a.concurrency, cache9k, work / "fill.jsonl"))
        cached = [run_child(winnow_argv(DATA_9K, srv.url, "fast", a.concurrency, cache9k, work / "again.jsonl"))
                  for _ in range(a.cached_repeats)]
        sent_after_fill = srv.stats()["total"]
    n9k = len(all_rows)
    by = {s["name"]: s for s in summary}
    report = {
        "command": "python " + " ".join([str(Path(__file__).relative_to(ROOT)), *sys.argv[1:]]),
        "loadavg_before": [round(x, 2) for x in load], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cores": os.cpu_count(), "rows": a.rows, "concurrency": a.concurrency, "latency": a.latency,
        "ideal_rows_per_s": a.concurrency / a.latency, "summary": summary,
        "cached_engine_rows_per_s": statistics.median(n9k / c["engine_wall"] for c in cached),
        "cached_rate_rows_per_s": statistics.median(n9k / c["rate_wall"] for c in cached),
        "cached_rate_each_rows_per_s": [round(n9k / c["rate_wall"]) for c in cached],
        "cached_rate_cpu_ms": statistics.median(1000 * c["rate_cpu"] for c in cached),
        "cached_process_wall_s": statistics.median(c["proc_wall"] for c in cached),
        "server_requests_total": sent_after_fill,
    }
    if "fast" in by and "ceiling" in by:
        report["fast_vs_ceiling"] = by["fast"]["rows_per_s"] / by["ceiling"]["rows_per_s"]
        # each repeat runs the two back to back: the median of their ratios is less exposed to
        # the machine's drift between repeats than the ratio of medians
        report["fast_vs_ceiling_paired"] = statistics.median(
            c["rate_wall"] / f["rate_wall"] for f, c in zip(results["fast"], results["ceiling"], strict=True))
        report["fast_engine_vs_ceiling_paired"] = statistics.median(
            c["rate_wall"] / f["engine_wall"] for f, c in zip(results["fast"], results["ceiling"], strict=True))
    if "fast" in by and "litellm" in by:
        report["fast_vs_litellm"] = by["fast"]["rows_per_s"] / by["litellm"]["rows_per_s"]
    if "fast" in by and "curator" in by:
        report["fast_vs_curator"] = by["fast"]["rows_per_s"] / by["curator"]["rows_per_s"]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-cli":
        child_cli(os.environ["BENCH_OUT"], sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-ceiling":
        child_ceiling(os.environ["BENCH_OUT"], sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
