"""Loading speed of the 9,229-row Alpaca file (moved here from the suite: speed goals are benchmarks).

Reads ../shared/data/alpaca_random_9k.json (beside the clone, not inside it: benchmarks may, tests may not).
Goal: the whole file loaded and validated in under 1 s.  Command: ``python bench/bench_loading.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

from winnow.data import load

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca_random_9k.json"


def main() -> None:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        ds = load(DATA)
        times.append(time.perf_counter() - start)
    print(f"{len(ds.samples)} rows, best {min(times) * 1000:.0f} ms, median {sorted(times)[2] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
