"""Several endpoints of one model (``--api-base URL1 --api-base URL2``), issue 18 item 4."""

from __future__ import annotations

import threading
import time

from typer.testing import CliRunner

from tests.fakeserver import FakeServer
from winnow.api import open_cache, rate
from winnow.cli.app import app
from winnow.engine.config import EngineSettings
from winnow.engine.endpoints import POOL_IDENTITY, EndpointPool

MODEL = "openai/fake-model"


def test_the_pool_spreads_benches_and_takes_back():
    now = [100.0]
    pool = EndpointPool(["http://a/v1", "http://b/v1/"], clock=lambda: now[0])
    first = pool.pick()
    pool.started(first)
    assert pool.pick() != first  # the other one has fewer in flight
    pool.failed(first)
    assert pool.healthy() == [u for u in pool.urls if u != first] and pool.other_healthy(first)
    assert pool.pick() != first  # benched
    now[0] += 0.6  # the first bench (0.5 s) is over: the next request probes it
    assert first in pool.healthy()
    pool.started(first)
    pool.failed(first)  # failed again: a longer bench (1 s)
    now[0] += 0.6
    assert first not in pool.healthy()
    now[0] += 0.5
    pool.started(first)
    pool.succeeded(first)  # it answers: back for good
    assert pool.failures[first] == 0 and first in pool.healthy()
    all_down = EndpointPool(["http://a/v1", "http://b/v1"], clock=lambda: now[0])
    for url in all_down.urls:
        all_down.started(url)
        all_down.failed(url)
    assert all_down.pick() == "http://a/v1"  # none healthy: probe the one whose bench ends first


def test_requests_spread_over_endpoints_and_the_cache_identity_is_the_model(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:120])
    with FakeServer(latency=0.01) as one, FakeServer(latency=0.01) as two:
        result = rate(data, ["alpagasus"], MODEL, api_base=[one.url, two.url], cache_dir=tmp_path / "c",
                      settings=EngineSettings(concurrency=8))
        assert all(r["alpagasus_status"] == "ok" for r in result.rows)
        assert one.total > 20 and two.total > 20 and one.total + two.total == 120  # spread by load
        again = rate(data, ["alpagasus"], MODEL, api_base=[two.url, one.url], cache_dir=tmp_path / "c")
        assert again.stats.calls == 0 and one.total + two.total == 120  # other order: the same judgments
    with open_cache(tmp_path / "c") as cache:
        assert {r["api_base"] for r in cache.records()} == {POOL_IDENTITY}


def rate_with_one_endpoint_stopped(data, cache_dir, latency: float, **kwargs):
    """Rate ``data`` over two loopback endpoints and stop the second once it has answered 30
    requests: (result, requests the second answered, requests the first answered)."""
    with FakeServer(latency=latency) as one:
        two = FakeServer(latency=latency).__enter__()
        done: dict = {}

        def run() -> None:
            done["result"] = rate(data, ["alpagasus"], MODEL, api_base=[one.url, two.url], cache_dir=cache_dir,
                                  **kwargs)

        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 120
        while two.total < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        two.__exit__(None, None, None)  # stopped mid-run: its connections are refused from now on
        served_before = two.total  # read once stopped: a request in flight at the stop still counts
        worker.join(timeout=180)
    return done["result"], served_before, one.total


def test_an_endpoint_stopped_mid_run_costs_no_row(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:200])
    result, served_before, first = rate_with_one_endpoint_stopped(
        data, tmp_path / "c", 0.02, settings=EngineSettings(concurrency=8, backoff_initial=0.05))
    assert served_before >= 30 and all(r["alpagasus_status"] == "ok" for r in result.rows)
    assert result.stats.calls == 200 and first >= 200 - served_before


def test_cli_takes_api_base_more_than_once(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:10])
    with FakeServer() as one, FakeServer() as two:
        result = CliRunner().invoke(app, ["rate", str(data), "--judge", "alpagasus", "--model", MODEL,
                                          "--api-base", one.url, "--api-base", two.url,
                                          "--cache-dir", str(tmp_path / "c"), "-q"])
        assert result.exit_code == 0, result.output
        assert one.total + two.total == 10 and one.total and two.total


def test_an_endpoint_dead_from_the_start_costs_no_row(alpaca_rows, write_jsonl, tmp_path):
    """A pool with one endpoint where nothing listens: its refusals come back before the live
    one's first answer, and must bench it, not stop the run (they did: 'nothing answers at the
    endpoints ...' after about 18 judgments)."""
    data = write_jsonl(alpaca_rows[:60])
    dead = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
    with FakeServer(latency=0.05) as live:
        for bases in ([live.url, dead], [dead, live.url]):
            cache = tmp_path / str(len(list(tmp_path.iterdir())))
            result = rate(data, ["alpagasus"], MODEL, api_base=bases, cache_dir=cache,
                          settings=EngineSettings(concurrency=8, backoff_initial=0.01))
            assert [r["alpagasus_status"] for r in result.rows] == ["ok"] * 60


def test_a_pool_where_nothing_answers_stops_in_seconds(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:20])
    started = time.monotonic()
    result = CliRunner().invoke(app, ["rate", str(data), "--judge", "alpagasus", "--model", MODEL,
                                      "--api-base", "http://127.0.0.1:9/v1", "--api-base", "http://127.0.0.1:7/v1",
                                      "--cache-dir", str(tmp_path / "c"), "-q"])
    assert result.exit_code == 1
    assert "nothing answers at the endpoints http://127.0.0.1:9/v1, http://127.0.0.1:7/v1" in result.output
    assert time.monotonic() - started < 15


def test_credentials_in_an_api_base_reach_neither_the_cache_nor_messages(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl(alpaca_rows[:3])
    with FakeServer() as srv:
        with_secret = srv.url.replace("http://", "http://user:urlsecret42@")
        result = rate(data, ["alpagasus"], MODEL, api_base=with_secret, cache_dir=tmp_path / "c")
        assert [r["alpagasus_status"] for r in result.rows] == ["ok"] * 3
        again = rate(data, ["alpagasus"], MODEL, api_base=srv.url, cache_dir=tmp_path / "c")
        assert again.stats.calls == 0  # the same server, with or without the credentials
    stored = b"".join(p.read_bytes() for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert b"urlsecret42" not in stored
    failed = CliRunner().invoke(app, ["rate", str(data), "--judge", "alpagasus", "--model", MODEL, "--api-base",
                                      "http://user:urlsecret42@127.0.0.1:9/v1", "--cache-dir", str(tmp_path / "d"),
                                      "-q"])
    assert failed.exit_code == 1 and "nothing answers at" in failed.output and "urlsecret42" not in failed.output
