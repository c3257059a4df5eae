"""--dry-run estimates and --max-cost, against the loopback fake server.

The fake server reports ``usage.prompt_tokens`` as characters // 4 of the message texts; the
estimate counts with litellm's ``token_counter`` (tiktoken).  We check the estimate both
against what the run recorded (the server's chars/4, within 10 %: the acceptance bar) and
against litellm's count of the messages the server actually received (within 1 %: proof that
the dry run renders exactly what the run sends).
"""

from __future__ import annotations

from winnow.api import rate
from winnow.audit.costs import estimate, format_estimate
from winnow.engine import EngineSettings

MODEL = "openai/fake-model"


def _settings(**kw):
    kw.setdefault("backoff_initial", 0.01)
    kw.setdefault("concurrency", 8)
    return EngineSettings(**kw)


def test_dry_run_sends_nothing_and_estimates_within_ten_percent(
    alpaca_rows, write_jsonl, fake_server, tmp_path
):
    from winnow.engine.litellm_transport import import_litellm

    data_small = write_jsonl(alpaca_rows[:60], "small.jsonl")
    data = write_jsonl(alpaca_rows[:240])
    cache = tmp_path / "c"
    rate(data_small, ["alpagasus"], MODEL, api_base=fake_server.url, cache_dir=cache, settings=_settings())
    sent_before = fake_server.total
    fake_server.reset()

    fresh = estimate(data, ["alpagasus"], MODEL, api_base=fake_server.url, cache_dir=tmp_path / "empty")
    est = estimate(data, ["alpagasus"], MODEL, api_base=fake_server.url, cache_dir=cache)
    assert fake_server.total == 0  # a dry run sends nothing
    [j] = est.judges
    assert sent_before == 60
    assert (j.samples, j.cached_samples, j.calls) == (240, 60, 180)
    assert "mean of cached alpagasus" in j.output_basis  # 60 cached replies give the output mean
    assert j.cost == 0.0 and "no listed price" in format_estimate(est)

    result = rate(data, ["alpagasus"], MODEL, api_base=fake_server.url, cache_dir=cache, settings=_settings())
    stats = result.stats
    assert stats.calls == 180 and stats.cache_hits == 60
    # calibrated on the 60 cached calls: within 10 % of the server's own (chars/4) count
    assert "ratio on cached calls" in j.input_basis
    assert abs(est.input_tokens - stats.prompt_tokens) / stats.prompt_tokens < 0.10
    assert abs(est.output_tokens - stats.completion_tokens) / stats.completion_tokens < 0.10
    litellm = import_litellm()
    counted = sum(litellm.token_counter(model=MODEL, messages=r.body["messages"])
                  for r in fake_server.requests)
    # uncalibrated (empty cache): exactly litellm's count of what was then sent (240 calls vs 180)
    assert fresh.judges[0].input_basis == "litellm" and fresh.calls == 240
    assert abs(fresh.input_tokens * 180 / 240 - counted) / counted < 0.05
    print(f"estimate {est.input_tokens} vs recorded {stats.prompt_tokens}; uncalibrated {fresh.input_tokens}")


def test_dry_run_counts_calls_per_turn_for_instag(write_jsonl, fake_server, tmp_path):
    rows = [
        {"conversations": [
            {"from": "human", "value": f"question {i} about birds"}, {"from": "gpt", "value": "a"},
            {"from": "human", "value": "and fish?"}, {"from": "gpt", "value": "b"},
        ]}
        for i in range(4)
    ]
    data = write_jsonl(rows)
    est = estimate(data, ["instag"], MODEL, api_base=fake_server.url, cache_dir=tmp_path / "c")
    # one call per user turn; the four identical "and fish?" turns are one request
    assert est.calls == 5 and est.judges[0].output_basis.startswith("max_tokens")
    assert est.output_tokens == 5 * 512
    rate(data, ["instag"], MODEL, api_base=fake_server.url, cache_dir=tmp_path / "c", settings=_settings())
    assert fake_server.total == 5
    again = estimate(data, ["instag"], MODEL, api_base=fake_server.url, cache_dir=tmp_path / "c")
    assert again.calls == 0 and again.judges[0].cached_samples == 4


def test_max_cost_stops_near_the_cap_and_a_rerun_resumes(alpaca_rows, write_jsonl, fake_server, tmp_path):
    # gpt-4o-mini has a price in litellm's map; api_base points it at the fake server
    model = "openai/gpt-4o-mini"
    data = write_jsonl(alpaca_rows[:80])
    est = estimate(data, ["alpagasus"], model, api_base=fake_server.url, cache_dir=tmp_path / "c")
    [j] = est.judges
    assert j.price_in > 0 and j.cost > 0
    cap = 20 * j.input_tokens * j.price_in / j.calls  # ~20 calls' input (the output estimate is max_tokens)
    kw = {"api_base": fake_server.url, "cache_dir": tmp_path / "c", "transport": "fast"}
    first = rate(data, ["alpagasus"], model, settings=_settings(max_cost=cap, concurrency=2), **kw)
    stats = first.stats
    assert stats.stopped and "max-cost" in stats.stopped
    per_call = stats.cost / stats.calls
    assert cap <= stats.cost < cap + 3 * per_call  # stops at the cap, plus at most the calls in flight
    not_judged = [r for r in first.rows if str(r["alpagasus_error"] or "").startswith("not judged")]
    assert len(not_judged) == 80 - stats.calls and 8 < stats.calls < 40
    sent = fake_server.total

    second = rate(data, ["alpagasus"], model, settings=_settings(), **kw)
    assert second.stats.cache_hits == stats.calls  # everything paid for is reused
    assert fake_server.total - sent == len(not_judged)  # only the missing rows are sent
    assert all(r["alpagasus_status"] == "ok" for r in second.rows)


def test_dry_run_for_a_local_model_counts_the_structured_prompt_rate_sends(write_jsonl, tmp_path):
    """``rate`` gives local models structured output by default; the estimate prices that prompt."""
    data = write_jsonl([{"instruction": f"Name colour {n}.", "input": "", "output": "Blue."} for n in range(2)])
    local = estimate(data, ["alpagasus"], "local", cache_dir=tmp_path / "c").judges[0]
    plain = estimate(data, ["alpagasus"], "local", structured=False, cache_dir=tmp_path / "c").judges[0]
    forced = estimate(data, ["alpagasus"], "local", structured=True, cache_dir=tmp_path / "c").judges[0]
    assert local.input_tokens == forced.input_tokens != plain.input_tokens
    assert local.cost == 0.0 and local.calls == 2
