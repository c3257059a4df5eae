"""The Ray engine against the local engine, at the same total requests in flight (issue 18).

    python bench/ray_engine.py --rows 12000 --latency 0.2 --in-flight 64

Needs the ``ray`` extra; reads ``../shared/data/alpaca_random_9k.json`` (its rows repeated with
numbered instructions past 9,229).  A loopback chat server (tests/fakeserver.py, its own process)
answers every request after ``--latency`` seconds.  Each configuration judges the rows with
AlpaGasus into a fresh cache: the local engine at concurrency 2K, the Ray engine with 1 actor x 2K
and 2 actors x K in flight.

Per configuration: rows/s over the whole run; the steady state, between the server's 20th and
80th percent of requests: rows/s, and CPU a row over the whole machine (/proc/stat: driver, Ray's
processes, actors; the server's own CPU subtracted) with its excess over the local engine's; the
fixed start-up (the run's time less its rows at the steady rate); and the peak of memory in use
on the machine above the level before the run (Ray's processes included).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakeserver import FakeServerProcess  # noqa: E402
from winnow.api import rate  # noqa: E402
from winnow.engine.config import EngineSettings  # noqa: E402
from winnow.engine.ray_engine import RayOptions  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "alpaca_random_9k.json"
TICK = os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU seconds spent by every process on the machine so far (user + nice + system + irq)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / TICK


def process_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def memory_in_use() -> int:
    info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return (int(info["MemTotal"].split()[0]) - int(info["MemAvailable"].split()[0])) * 1024


class PeakMemory:
    def __init__(self) -> None:
        self.base = memory_in_use()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, memory_in_use())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.base


def distinct(rows: list[dict], n: int) -> list[dict]:
    """The first n rows, the file's 9,229 repeated where n is larger, each repeat's instruction
    numbered so no two prompts are the same (a repeat would be one call)."""
    return [rows[i] if i < len(rows) else {**rows[i % len(rows)],
                                           "instruction": f"{rows[i % len(rows)]['instruction']} ({i // len(rows)})"}
            for i in range(n)]


def judge(rows: list[dict], n: int, work: Path, server: Any, engine: RayOptions | None,
          concurrency: int) -> dict[str, float]:
    """Judge n rows; the whole run's time and memory, and the steady state: rows/s and CPU a row
    over the whole machine between the server's 20th and 80th percent of requests."""
    data = work / f"rows-{n}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in distinct(rows, n)))
    cache = Path(tempfile.mkdtemp(dir=work))
    start_total = int(server.stats()["total"])
    marks: list[tuple[float, float]] = []  # (time, CPU of every process but the server's)

    def mark() -> None:
        marks.append((time.perf_counter(), busy_seconds() - process_seconds(server.proc.pid)))

    done: dict[str, Any] = {}

    def run() -> None:
        done["result"] = rate(data, ["alpagasus"], "openai/fake-model", api_base=server.url, cache_dir=cache,
                              settings=EngineSettings(concurrency=concurrency), engine=engine,
                              on_bad_row="skip")  # the file's 4 empty outputs are bad rows for AlpaGasus

    memory = PeakMemory()
    wall0 = time.perf_counter()
    worker = threading.Thread(target=run)
    worker.start()
    for share in (0.2, 0.8):
        while worker.is_alive() and int(server.stats()["total"]) - start_total < share * n:
            time.sleep(0.02)
        mark()
    worker.join()
    wall = time.perf_counter() - wall0
    peak = memory.stop()
    ok = sum(r["alpagasus_status"] == "ok" for r in done["result"].rows)
    assert ok >= n - 2, f"{ok}/{n} ok"  # a repeated row or two can end judge_failed in the data itself
    (t20, cpu20), (t80, cpu80) = marks
    return {"wall": wall, "steady": 0.6 * n / (t80 - t20), "cpu_row": (cpu80 - cpu20) / (0.6 * n) * 1000,
            "startup": wall - n / (0.6 * n / (t80 - t20)), "memory": peak}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=12000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--in-flight", type=int, default=64, help="K: per actor; the local engine gets 2K")
    args = parser.parse_args()
    rows = json.loads(DATA.read_text())
    work = Path(tempfile.mkdtemp(prefix="winnow-bench-ray-"))
    k = args.in_flight
    configs = [("local engine, concurrency 2K", None, 2 * k),
               ("Ray, 1 actor x 2K", RayOptions(actors=1, in_flight_per_actor=2 * k), 2 * k),
               ("Ray, 2 actors x K", RayOptions(actors=2, in_flight_per_actor=k), 2 * k)]
    print(f"K={k}, latency {args.latency} s, {args.rows} rows, {os.cpu_count()} CPUs")
    local: dict[str, float] = {}
    with FakeServerProcess(latency=args.latency) as server:
        for name, engine, concurrency in configs:
            got = judge(rows, args.rows, work, server, engine, concurrency)
            local = local or got
            print(f"{name}: {args.rows / got['wall']:.0f} rows/s ({got['wall']:.1f} s) | steady {got['steady']:.0f} "
                  f"rows/s ({got['steady'] / local['steady']:.2f}x) | start-up {got['startup']:.1f} s | steady CPU "
                  f"{got['cpu_row']:.2f} ms/row (+{got['cpu_row'] - local['cpu_row']:.2f}) | memory "
                  f"+{got['memory'] / 2**20:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
