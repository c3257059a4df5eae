"""The Ray engine against the local engine, at the same total requests in flight.

    /path/to/venv-with-ray/bin/python bench/ray_engine.py --rows 2000 --latency 0.2

A loopback chat server (tests/fakeserver.py, its own process) answers every request after
``--latency`` seconds.  Each configuration judges the same rows with AlpaGasus into a fresh cache:
the local engine at concurrency 2 x K, the Ray engine with 1 actor x 2K and 2 actors x K in flight.
Prints rows/s, the driver's CPU per row, the fixed start-up (Ray's init), and peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakeserver import FakeServerProcess  # noqa: E402
from winnow.api import rate  # noqa: E402
from winnow.engine.config import EngineSettings  # noqa: E402
from winnow.engine.ray_engine import RayOptions  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "alpaca_random_9k.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--in-flight", type=int, default=64, help="K: per actor; the local engine gets 2K")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="winnow-bench-ray-"))
    data = work / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in json.loads(DATA.read_text())[: args.rows]))
    k = args.in_flight
    configs = [("local engine", None, 2 * k),
               ("ray, 1 actor", RayOptions(actors=1, in_flight_per_actor=2 * k), 2 * k),
               ("ray, 2 actors", RayOptions(actors=2, in_flight_per_actor=k), 2 * k)]
    with FakeServerProcess(latency=args.latency) as server:
        for n, (name, engine, concurrency) in enumerate(configs):
            cpu0 = time.process_time()
            wall0 = time.perf_counter()
            result = rate(data, ["alpagasus"], "openai/fake-model", api_base=server.url, cache_dir=work / f"c{n}",
                          settings=EngineSettings(concurrency=concurrency), engine=engine)
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            ok = sum(r["alpagasus_status"] == "ok" for r in result.rows)
            print(f"{name}: {args.rows / wall:.0f} rows/s, {wall:.1f} s, driver CPU {cpu / args.rows * 1000:.2f} "
                  f"ms/row, peak RSS {peak:.0f} MiB, {ok}/{args.rows} ok", flush=True)


if __name__ == "__main__":
    main()
