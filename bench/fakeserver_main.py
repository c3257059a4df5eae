"""Run the OpenAI-compatible fake server (tests/fakeserver.py) as its own process.

Why: clients under test are often subprocesses, and throughput benchmarks need the server on its own
core. Prints ``READY <port>`` on stdout once listening on 127.0.0.1; runs until killed.

    python bench/fakeserver_main.py --port 0 --latency 0.2 --fault 429=0.05 --fail-first 503:2 \\
        --rpm 60 --rpm-window 1 --seed 7 --script 'poem=>roses are red'

``--bench N --concurrency C`` instead measures throughput: it starts the server in a child process and
drives it with C concurrent raw aiohttp clients for N requests, then prints req/s.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakeserver import main  # noqa: E402

if __name__ == "__main__":
    main()
