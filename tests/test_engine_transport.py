"""The engine through both transports: same outputs, same cache hits, same error handling.

Every scenario runs through litellm and through the fast aiohttp transport against the
loopback fake server; the cross-transport tests show a judgment cached by one is a hit for
the other (the cache key never includes the transport).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakeserver import FakeServer
from winnow.api import open_cache, rate
from winnow.engine import EngineSettings, FatalRunError
from winnow.engine.sending import REJECTED_BEFORE_ANSWER

MODEL = "openai/fake-model"
KEY = "sk-test-transport-0123456789abcdef"
TRANSPORTS = ("fast", "litellm")


@pytest.fixture
def srv():
    with FakeServer(record=True, retry_after=0.05, hang_seconds=3.0) as server:
        yield server


@pytest.fixture
def data(alpaca_rows, write_jsonl) -> Path:
    return write_jsonl(alpaca_rows[:12])


def _rate(data: Path, srv: FakeServer, cache: Path, transport: str, model: str = MODEL, **kw):
    settings = kw.pop("settings", None) or EngineSettings(backoff_initial=0.01, concurrency=4, timeout=10)
    return rate(
        data,
        ["alpagasus"],
        model,
        api_base=srv.url,
        api_key=KEY,
        cache_dir=cache,
        transport=transport,
        settings=settings,
        **kw,
    )


def _scores(result) -> list[tuple]:
    return [(r["alpagasus_score"], r["alpagasus_explanation"], r["alpagasus_status"]) for r in result.rows]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_rates_a_small_file(transport, data, srv, tmp_path):
    result = _rate(data, srv, tmp_path / "c", transport, output=tmp_path / "out.jsonl")
    assert srv.total == 12
    assert dict(result.stats.transports) == {transport: 12}
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["alpagasus_status"] for r in rows] == ["ok"] * 12
    assert all(0 <= r["alpagasus_score"] <= 5 for r in rows)
    assert result.stats.prompt_tokens > 0 and result.stats.completion_tokens > 0
    req = srv.requests[0]
    assert req.body["model"] == "fake-model"  # provider prefix stripped on the wire
    assert req.headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(req.headers)


def test_both_transports_give_identical_rows(data, tmp_path):
    outs = {}
    for transport in TRANSPORTS:
        with FakeServer() as server:
            outs[transport] = _scores(_rate(data, server, tmp_path / transport, transport))
    assert outs["fast"] == outs["litellm"]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fault", ["429", "500", "503", "malformed", "no_choices", "drop"])
def test_transient_fault_is_retried_then_succeeds(transport, fault, data, srv, tmp_path):
    srv.fail_next(fault, 2)
    result = _rate(data, srv, tmp_path / "c", transport)
    assert [s for *_, s in _scores(result)] == ["ok"] * 12
    assert result.stats.retries == 2 and result.stats.request_failures == 0
    assert srv.faults_count[fault] == 2
    assert result.stats.calls == 12


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_429_retry_after_halves_the_window_and_pauses_the_run(transport, data, srv, tmp_path):
    srv.retry_after = 0.3
    srv.fail_next("429", 1)
    settings = EngineSettings(backoff_initial=0.01, concurrency=8, timeout=10)
    result = _rate(data, srv, tmp_path / "c", transport, settings=settings)
    assert result.stats.retries == 1 and srv.by_status[429] == 1
    assert result.stats.concurrency_limit < 8  # halved to 4, regrowing needs 10 straight successes
    times = [r.t for r in srv.requests]
    # the retried request waited out Retry-After: the run spans at least that pause
    assert max(times) - min(times) >= 0.25


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_hang_past_the_timeout_is_retried(transport, data, srv, tmp_path):
    srv.fail_next("hang", 1)
    settings = EngineSettings(backoff_initial=0.01, concurrency=4, timeout=0.5)
    result = _rate(data, srv, tmp_path / "c", transport, settings=settings)
    assert [s for *_, s in _scores(result)] == ["ok"] * 12
    assert result.stats.retries == 1 and srv.faults_count["hang"] == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_server_that_never_answers_stops_the_run_naming_its_url(transport, data, tmp_path):
    with FakeServer() as server:
        url = server.url  # closed again: nothing listens there now
    settings = EngineSettings(backoff_initial=0.01, concurrency=4, timeout=2, max_retries=6)
    with pytest.raises(FatalRunError) as caught:
        rate(data, ["alpagasus"], MODEL, api_base=url, api_key=KEY, cache_dir=tmp_path / "c",
             transport=transport, settings=settings)
    message = str(caught.value)
    assert f"nothing answers at {url}" in message and "hint: start the server first" in message
    assert KEY not in message
    with open_cache(tmp_path / "c") as cache:
        assert len(cache) == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(
    ("fault", "hint"),
    [
        ("400", "rejected the request"),
        ("401", "authentication failed"),
        ("404", "check --model and --api-base"),
    ],
)
def test_client_errors_fail_fast_with_a_hint(transport, fault, hint, data, srv, tmp_path):
    srv.faults = {fault: 1.0}
    with pytest.raises(FatalRunError) as info:
        _rate(data, srv, tmp_path / "c", transport)
    message = str(info.value)
    assert hint in message and KEY not in message
    # no retries: at most the requests already in flight; a 400 may be one row's (an over-long
    # prompt), so it stops the run once REJECTED_BEFORE_ANSWER requests were refused and none answered
    assert srv.total <= (4 if fault != "400" else REJECTED_BEFORE_ANSWER + 3)
    if fault == "400":
        assert f"{REJECTED_BEFORE_ANSWER} requests rejected and none answered" in message
    from winnow.cache import JudgmentCache

    with JudgmentCache(tmp_path / "c") as cache:
        assert len(cache) == 0  # a refused request is not a judgment


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_row_the_server_rejects_fails_alone(transport, srv, write_jsonl, tmp_path):
    """One over-long prompt must not stop a 9,000-row run: its row fails, the rest are judged."""
    rows = [{"instruction": f"Add {i} and 1.", "input": "", "output": str(i + 1)} for i in range(30)]
    for i in (3, 17, 18):
        rows[i]["input"] = "TOO-LONG " + "x" * 50
    srv.script("TOO-LONG", fault="400")  # as vLLM / OpenAI answer a prompt over the context length
    result = _rate(write_jsonl(rows), srv, tmp_path / "c", transport)
    statuses = [r["alpagasus_status"] for r in result.rows]
    assert [i for i, s in enumerate(statuses) if s != "ok"] == [3, 17, 18]
    assert all(result.rows[i]["alpagasus_error"].startswith("rejected by the server: ") for i in (3, 17, 18))
    assert "HTTP 400" in result.rows[3]["alpagasus_error"] or "BadRequest" in result.rows[3]["alpagasus_error"]
    assert srv.total == 30  # each rejection sent once: no retries
    again = _rate(write_jsonl(rows), srv, tmp_path / "c", transport)  # not cached: a re-run asks again
    assert srv.total == 33 and again.stats.cache_hits == 27


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_identical_second_run_sends_nothing(transport, data, srv, tmp_path):
    first = _rate(data, srv, tmp_path / "c", transport)
    assert srv.total == 12
    second = _rate(data, srv, tmp_path / "c", transport)
    assert srv.total == 12
    assert second.stats.cache_hits == 12 and second.stats.calls == 0
    assert _scores(first) == _scores(second)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_changed_model_resends_all_and_both_stay_cached(transport, data, srv, tmp_path):
    _rate(data, srv, tmp_path / "c", transport)
    _rate(data, srv, tmp_path / "c", transport, model="openai/other-model")
    assert srv.total == 24
    assert {r.body["model"] for r in srv.requests} == {"fake-model", "other-model"}
    _rate(data, srv, tmp_path / "c", transport)
    _rate(data, srv, tmp_path / "c", transport, model="openai/other-model")
    assert srv.total == 24


@pytest.mark.parametrize(("first", "second"), [("litellm", "fast"), ("fast", "litellm")])
def test_cache_hits_across_transports(first, second, data, srv, tmp_path):
    a = _rate(data, srv, tmp_path / "c", first)
    b = _rate(data, srv, tmp_path / "c", second)
    assert srv.total == 12
    assert b.stats.cache_hits == 12 and b.stats.calls == 0 and not b.stats.transports
    assert _scores(a) == _scores(b)
    raw = b"".join(p.read_bytes() for p in (tmp_path / "c").rglob("*") if p.is_file())
    assert KEY.encode() not in raw  # the key never reaches the cache


def test_fast_run_never_imports_litellm_nor_ray(data, srv, tmp_path):
    code = (
        "import sys; from winnow.api import rate; from winnow.engine import EngineSettings\n"
        f"r = rate({str(data)!r}, ['alpagasus'], 'openai/gpt-4o-mini', api_base={srv.url!r}, api_key='sk-x',\n"
        f"         cache_dir={str(tmp_path / 'c')!r}, transport='auto', settings=EngineSettings(concurrency=4))\n"
        "print(dict(r.stats.transports), r.stats.cost > 0, 'litellm' in sys.modules or 'ray' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stderr
    # priced from litellm's table (gpt-4o-mini has a price) without importing litellm
    assert out.stdout.split() == ["{'fast':", "12}", "True", "False"]
