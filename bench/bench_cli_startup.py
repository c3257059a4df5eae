"""``winnow --help`` start-up time (median of 10) and a check that importing the CLI leaves litellm out.

Assert-free: prints the numbers for BENCHMARKS.md (goal: < 0.5 s).

    python bench/bench_cli_startup.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time


def main(runs: int = 10) -> None:
    script = shutil.which("winnow")  # the installed console script, as a user runs it
    argv = [script, "--help"] if script else [sys.executable, "-c", "from winnow.cli import main; main()", "--help"]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - t0)
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, winnow.cli; "
         "print(','.join(m for m in ('litellm', 'pandas', 'numpy', 'aiohttp') if m in sys.modules) or 'none')"],
        capture_output=True, text=True, check=False,
    )
    print(f"winnow --help: median {statistics.median(times):.3f} s over {runs} runs "
          f"(min {min(times):.3f}, max {max(times):.3f}); load average {os.getloadavg()[0]:.2f}")
    print(f"heavy modules loaded by 'import winnow.cli': {probe.stdout.strip() or probe.stderr.strip()[-300:]}")


if __name__ == "__main__":
    main()
