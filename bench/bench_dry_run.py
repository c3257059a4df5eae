"""--dry-run accuracy on the 9,229-row Alpaca file (the acceptance check of the cost estimate).

Result (2 loaded cores): uncalibrated estimate 1,982,960 input tokens in 17.9 s = litellm's count of the
sent messages (+0.00 %), -12.7 % vs the fake server's chars/4; with 200 rows cached (calibration x1.143):
input -0.23 %, output -0.46 % vs what the run recorded.  Real rate of 9,229 rows: 28.4 s.

Usage: ``python bench/bench_dry_run.py [ROWS]`` (default: every row of
../shared/data/alpaca_random_9k.json).

1. ``estimate`` on an empty cache (tokens by litellm.token_counter, uncalibrated);
2. a real ``rate`` of every row against the fake server in a child process;
3. compares the estimate with (a) the prompt tokens the run recorded (the fake server's
   usage is characters // 4), (b) litellm.token_counter over the messages the run actually
   sent (the cache records' ``key_parts.messages``), which is what an OpenAI server reports;
4. repeats the estimate with the first 200 rows already cached (the estimate then scales its
   count by the server's recorded/counted ratio) and compares with the rest of the run.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakeserver import FakeServerProcess  # noqa: E402
from winnow.api import rate  # noqa: E402
from winnow.audit.costs import estimate  # noqa: E402
from winnow.cache import JudgmentCache  # noqa: E402
from winnow.engine import EngineSettings  # noqa: E402

MODEL = "openai/fake-model"


def main() -> None:
    rows = json.loads((ROOT.parent / "shared/data/alpaca_random_9k.json").read_text())
    rows = [r for r in rows if r["output"].strip()]  # 4 empty outputs: bad rows for AlpaGasus (run and estimate)
    if len(sys.argv) > 1:
        rows = rows[: int(sys.argv[1])]
    with tempfile.TemporaryDirectory() as tmp, FakeServerProcess() as srv:
        data = Path(tmp) / "data.json"
        data.write_text(json.dumps(rows))
        head = Path(tmp) / "head.json"
        head.write_text(json.dumps(rows[:200]))
        settings = EngineSettings(concurrency=64, backoff_initial=0.01)

        t0 = time.perf_counter()
        est = estimate(data, ["alpagasus"], MODEL, api_base=srv.url, cache_dir=Path(tmp) / "c1")
        t_est = time.perf_counter() - t0
        t0 = time.perf_counter()
        run = rate(
            data, ["alpagasus"], MODEL, api_base=srv.url, cache_dir=Path(tmp) / "c1", settings=settings
        )
        t_run = time.perf_counter() - t0
        from winnow.engine.litellm_transport import import_litellm

        litellm = import_litellm()
        with JudgmentCache(Path(tmp) / "c1") as cache:
            counted = sum(
                litellm.token_counter(model=MODEL, messages=r["key_parts"]["messages"])
                for r in cache.records()
            )
        rec = run.stats.prompt_tokens
        print(f"rows {len(rows)}; calls estimated {est.calls}, sent {run.stats.calls}")
        print(f"estimate (uncalibrated, {est.counter}): {est.input_tokens} input tokens in {t_est:.1f} s")
        print(
            f"  vs litellm.token_counter of the sent messages: {counted} "
            f"({100 * (est.input_tokens - counted) / counted:+.2f} %)"
        )
        print(
            f"  vs recorded by the fake server (chars/4): {rec} "
            f"({100 * (est.input_tokens - rec) / rec:+.2f} %)"
        )
        print(
            f"  output estimate {est.output_tokens} (max_tokens bound) "
            f"vs recorded {run.stats.completion_tokens}"
        )
        print(f"run: {t_run:.1f} s")

        rate(head, ["alpagasus"], MODEL, api_base=srv.url, cache_dir=Path(tmp) / "c2", settings=settings)
        est2 = estimate(data, ["alpagasus"], MODEL, api_base=srv.url, cache_dir=Path(tmp) / "c2")
        run2 = rate(
            data, ["alpagasus"], MODEL, api_base=srv.url, cache_dir=Path(tmp) / "c2", settings=settings
        )
        rec2 = run2.stats.prompt_tokens
        j = est2.judges[0]
        print(f"with 200 rows cached: {est2.calls} calls estimated, {run2.stats.calls} sent; {j.input_basis}")
        print(
            f"  input {est2.input_tokens} vs recorded {rec2} "
            f"({100 * (est2.input_tokens - rec2) / rec2:+.2f} %)"
        )
        out2 = run2.stats.completion_tokens
        print(
            f"  output {est2.output_tokens} vs recorded {out2} "
            f"({100 * (est2.output_tokens - out2) / out2:+.2f} %)"
        )


if __name__ == "__main__":
    main()
