"""The Ray engine against the local engine, at the same total requests in flight (issue 18).

    python bench/ray_engine.py --latency 0.2 --in-flight 64 --small 2000 --large 8000

Needs the ``ray`` extra; reads ``../shared/data/alpaca_random_9k.json``.  A loopback chat server
(tests/fakeserver.py, its own process) answers every request after ``--latency`` seconds.  Each
configuration judges the first N rows with AlpaGasus into a fresh cache, for N = small and large:
the local engine at concurrency 2K, the Ray engine with 1 actor x 2K and 2 actors x K in flight.

Per configuration: rows/s at each size; the marginal rows/s (the extra rows over the extra
time: start-up cancels out); the fixed start-up (large time less large rows at the marginal
rate); CPU per marginal row over the whole machine (/proc/stat, every process: driver, Ray,
actors; the server's own CPU subtracted) and its excess over the local engine's; and the peak of
memory in use on the machine above the idle level (Ray's processes included).
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
          concurrency: int) -> tuple[float, float, int]:
    data = work / f"rows-{n}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in distinct(rows, n)))
    cache = Path(tempfile.mkdtemp(dir=work))
    server_cpu0, cpu0, wall0 = process_seconds(server.proc.pid), busy_seconds(), time.perf_counter()
    memory = PeakMemory()
    result = rate(data, ["alpagasus"], "openai/fake-model", api_base=server.url, cache_dir=cache,
                  settings=EngineSettings(concurrency=concurrency), engine=engine)
    wall = time.perf_counter() - wall0
    peak = memory.stop()
    cpu = busy_seconds() - cpu0 - (process_seconds(server.proc.pid) - server_cpu0)
    ok = sum(r["alpagasus_status"] == "ok" for r in result.rows)
    assert ok >= n - 2, f"{ok}/{n} ok"  # a repeated row or two can end judge_failed in the data itself
    return wall, cpu, peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=2000)
    parser.add_argument("--large", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--in-flight", type=int, default=64, help="K: per actor; the local engine gets 2K")
    args = parser.parse_args()
    rows = json.loads(DATA.read_text())
    work = Path(tempfile.mkdtemp(prefix="winnow-bench-ray-"))
    k = args.in_flight
    configs = [("local engine, concurrency 2K", None, 2 * k),
               ("Ray, 1 actor x 2K", RayOptions(actors=1, in_flight_per_actor=2 * k), 2 * k),
               ("Ray, 2 actors x K", RayOptions(actors=2, in_flight_per_actor=k), 2 * k)]
    print(f"K={k}, latency {args.latency} s, {args.small} and {args.large} rows, {os.cpu_count()} CPUs")
    local_rate = local_cpu = None
    with FakeServerProcess(latency=args.latency) as server:
        for name, engine, concurrency in configs:
            small_wall, small_cpu, _ = judge(rows, args.small, work, server, engine, concurrency)
            large_wall, large_cpu, peak = judge(rows, args.large, work, server, engine, concurrency)
            extra = args.large - args.small
            marginal = extra / (large_wall - small_wall)
            cpu_row = (large_cpu - small_cpu) / extra * 1000
            startup = large_wall - args.large / marginal
            local_rate = local_rate or marginal
            local_cpu = local_cpu if local_cpu is not None else cpu_row
            print(f"{name}: {args.small / small_wall:.0f} rows/s ({small_wall:.1f} s) | {args.large / large_wall:.0f} "
                  f"rows/s ({large_wall:.1f} s) | marginal {marginal:.0f} rows/s ({marginal / local_rate:.2f}x) | "
                  f"start-up {startup:.1f} s | CPU {cpu_row:.2f} ms/row (+{cpu_row - local_cpu:.2f}) | "
                  f"memory +{peak / 2**20:.0f} MiB", flush=True)


if __name__ == "__main__":
    main()
