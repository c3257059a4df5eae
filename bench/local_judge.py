"""Throughput of the local judge: AlpaGasus (structured) on SmolLM2-135M via llama.cpp.

    python bench/local_judge.py --rows 24 --threads 1 2 --concurrency 1 4

Rows: the first N of ../shared/data/alpaca_random_9k.json.  One server per thread count,
warmed with one request; a fresh cache per measurement, so every judgment is a real call.
Prints one line per (threads, concurrency) with judgments/s and the 1-minute load average.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from winnow.api import rate
from winnow.engine.config import EngineSettings
from winnow.local import LocalServer, LocalSettings, bundled_gguf

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "alpaca_random_9k.json"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=24)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    rows = json.loads(DATA.read_text())[: args.rows]
    work = Path(tempfile.mkdtemp(prefix="winnow-bench-local-"))
    data = work / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    for threads in args.threads:
        with LocalServer(bundled_gguf(), settings=LocalSettings(n_threads=threads)) as server:
            warm = work / "warm.jsonl"
            warm.write_text(json.dumps({"instruction": "Say hi.", "input": "", "output": "Hi!"}) + "\n")
            rate(warm, ["alpagasus"], "local", api_base=server.api_base, structured=True, use_cache=False)
            for conc in args.concurrency:
                load_before = os.getloadavg()[0]
                started = time.monotonic()
                result = rate(data, ["alpagasus"], "local", api_base=server.api_base, structured=True,
                              cache_dir=work / f"cache-{threads}-{conc}",
                              settings=EngineSettings(concurrency=conc))
                elapsed = time.monotonic() - started
                ok = sum(r["alpagasus_status"] == "ok" for r in result.rows)
                print(json.dumps({
                    "threads": threads, "concurrency": conc, "rows": len(rows), "ok": ok,
                    "seconds": round(elapsed, 1), "judgments_per_s": round(len(rows) / elapsed, 3),
                    "prompt_tokens": result.stats.prompt_tokens, "completion_tokens": result.stats.completion_tokens,
                    "reasks": result.stats.reasks, "load_before": round(load_before, 2),
                    "load_after": round(os.getloadavg()[0], 2),
                }), flush=True)


if __name__ == "__main__":
    main()
