"""Run the OpenAI-compatible fake server (tests/fakeserver.py) as its own process.

Why: clients under test are often subprocesses, and throughput benchmarks need the server on its own
core. Prints ``READY <port>`` on stdout once listening on 127.0.0.1; runs until killed.

    python bench/fakeserver_main.py --port 0 --latency 0.2 --fault 429=0.05 --fail-first 503:2 \\
        --rpm 60 --rpm-window 1 --seed 7 --script 'poem=>roses are red'

Throughput check (server in a child process, raw aiohttp clients in this one):

    python bench/fakeserver_main.py --bench 20000 --concurrency 256 --latency 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fakeserver import FakeServerProcess, main


async def _drive(url: str, total: int, concurrency: int) -> tuple[float, int, int]:
    import aiohttp
    import orjson

    conn = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    todo = iter(range(total))
    ok = bad = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok, bad
        for i in todo:
            body = orjson.dumps({"model": "fake-model", "temperature": 0,
                                 "messages": [{"role": "user", "content": f"Rate item {i}"}]})
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                data = await r.read()
                if r.status == 200 and orjson.loads(data)["choices"]:
                    ok += 1
                else:
                    bad += 1

    async with aiohttp.ClientSession(connector=conn) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return time.perf_counter() - t0, ok, bad


def _cpu(pid: int) -> float:
    """user+system CPU seconds of a process (Linux /proc)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bench", type=int, required=True, help="number of requests")
    p.add_argument("--concurrency", type=int, default=256)
    p.add_argument("--latency", type=float, default=0.2)
    a, rest = p.parse_known_args(argv)
    with FakeServerProcess(latency=a.latency, extra_args=rest) as srv:
        assert srv.proc is not None
        cpu0, self0 = _cpu(srv.proc.pid), time.process_time()
        secs, ok, bad = asyncio.run(_drive(srv.url + "/chat/completions", a.bench, a.concurrency))
        server_cpu, client_cpu = _cpu(srv.proc.pid) - cpu0, time.process_time() - self0
        st = srv.stats()
    ideal = a.concurrency / a.latency if a.latency else float("inf")
    per = max(ok, 1) / 1e6
    print(f"requests={a.bench} concurrency={a.concurrency} latency={a.latency}s ok={ok} bad={bad} "
          f"secs={secs:.2f} req/s={ok / secs:.0f} ideal={ideal:.0f} "
          f"server_max_in_flight={st['max_in_flight']} "
          f"server_cpu_us/req={server_cpu / per:.0f} client_cpu_us/req={client_cpu / per:.0f}")

if __name__ == "__main__":
    if "--bench" in sys.argv:
        bench(sys.argv[1:])
    else:
        main()
