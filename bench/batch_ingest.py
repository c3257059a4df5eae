"""Batch mode: ingest speed and what a 9,229-row AlpaGasus job costs at batch rates vs online.

    python bench/batch_ingest.py

Reads ../shared/data/alpaca_random_9k.json (benchmarks may; tests may not).  The batch job runs
against the loopback Files + Batches server of the tests (tests/batchserver.py), so every second
measured is winnow's: planning, writing the request file, the upload, and ingesting 9,229 result
lines into the cache (parse, record, commit).  The costs are the dry run's estimates for
openai/gpt-4o-mini (litellm's price table), online and at batch rates.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.batchserver import BatchServer  # noqa: E402
from winnow.audit.costs import estimate  # noqa: E402
from winnow.batch import driver  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "alpaca_random_9k.json"
MODEL = "openai/gpt-4o-mini"


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="winnow-bench-batch-"))
    rows = json.loads(DATA.read_text())
    data = work / "rows.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spent = {"ingest": 0.0}
    real_ingest = driver._ingest

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        real_ingest(*args, **kwargs)
        spent["ingest"] += time.perf_counter() - start

    driver._ingest = timed  # type: ignore[assignment]
    with BatchServer() as server:
        start = time.perf_counter()
        rate_args = {"data": str(data), "judges": ["alpagasus"], "model": MODEL, "api_base": server.url,
                     "output": str(work / "out.jsonl"), "on_bad_row": "skip"}  # its 4 empty outputs
        outcome = driver.submit(rate_args, cache_dir=work / "cache", poll_seconds=0.01)
        total = time.perf_counter() - start
    assert outcome.done
    n = len(rows)
    rate = n / spent["ingest"]
    print(f"{n} rows: whole batch job {total:.1f} s; ingest {spent['ingest']:.2f} s = {rate:,.0f} rows/s")
    online = estimate(data, ["alpagasus"], MODEL, cache_dir=work / "empty")
    batch = estimate(data, ["alpagasus"], MODEL, cache_dir=work / "empty", batch=True)
    print(f"dry run, {MODEL}: online ${online.cost:.4f}, batch ${batch.cost:.4f} "
          f"({online.input_tokens:,} input + {online.output_tokens:,} output tokens)")


if __name__ == "__main__":
    main()
