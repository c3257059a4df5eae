"""The engine's two passes over one stream, and the cache pieces they lean on.

- a cache miss is rendered once: the online pass resumes the judge coroutine the cache-first
  pass left suspended, so a multi-call judge does not re-read (or re-count) the steps it hit;
- errors reach the judge at its ``await`` exactly as the plain ``ask`` raises them;
- a judge awaiting something other than ``ask`` still works in both passes;
- the records finished in one loop turn are committed together (group commit) and a failed
  commit reaches every caller;
- ``KeyTemplate`` gives byte-identical keys to ``cache_key``; ``get_many(slim=True)`` returns the
  fields a judge reads (from each row's summary, or json_extract for rows without one), and
  ``Answer.record`` fetches the whole record when a judge wants it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakeserver import FakeServer
from winnow.cache import CacheError, JudgmentCache, cache_key, key_parts
from winnow.cache.key import KeyTemplate
from winnow.engine import Engine, EngineSettings, JudgeRun, ModelConfig
from winnow.engine.writer import GroupWriter
from winnow.judges.base import Answer, Ask, CallSpec, Judge, RequestFailed, SingleCallJudge, Verdict
from winnow.types import Sample, Status, Turn

MODEL = "openai/fake-model"


def _sample(n: int) -> Sample:
    text = f"Question number {n}: what is {n} + {n}?"
    return Sample(id=f"s{n}", turns=[Turn("user", text), Turn("assistant", str(2 * n))], row={"n": n}, index=n)


class StepJudge(Judge):
    """Asks ``steps`` questions in a row about one sample; counts how often it renders each."""

    name = "steps"
    columns = ("answers",)

    def __init__(self, steps: int = 3, on_cached: str | None = None) -> None:
        super().__init__()
        self.steps = steps
        self.renders: dict[tuple[str, int], int] = {}
        self.on_cached = on_cached
        self.raws: list[str] = []

    @property
    def fingerprint(self) -> str:
        return f"steps-{self.steps}"

    def _spec(self, sample: Sample, step: int) -> CallSpec:
        self.renders[(sample.id, step)] = self.renders.get((sample.id, step), 0) + 1
        prompt = f"step {step} of sample {sample.id}: {sample.turns[0].content}"
        return CallSpec(messages=[{"role": "user", "content": prompt}], parse=lambda r: {"text": r.text},
                        purpose=f"step{step}")

    async def judge(self, sample: Sample, ask: Ask) -> Verdict:
        answers = []
        for step in range(self.steps):
            answer = await ask(self._spec(sample, step))
            if self.on_cached == "raw" and answer.cached:
                self.raws.append(answer.record["raw"])
            answers.append((answer.parsed or {}).get("text"))
        return Verdict(Status.OK, {"answers": answers})


def _run(judge: Judge, samples: list[Sample], srv: FakeServer, cache: JudgmentCache, **kw: Any) -> tuple[Engine, list]:
    settings = EngineSettings(concurrency=kw.pop("concurrency", 4), backoff_initial=0.01, timeout=10, **kw)
    engine = Engine(cache, settings)
    run = JudgeRun(judge, ModelConfig(MODEL, api_base=srv.url, api_key="sk-x", transport="fast"))
    return engine, engine.run(samples, [run])[0]


def test_a_miss_is_rendered_once_and_cached_steps_are_not_recounted(tmp_path: Path) -> None:
    samples = [_sample(n) for n in range(6)]
    with FakeServer(record=True) as srv, JudgmentCache(tmp_path / "c") as cache:
        _run(StepJudge(steps=2), samples, srv, cache)  # steps 0-1 cached for every sample
        assert srv.total == 12
        engine, verdicts = _run(StepJudge(steps=2), samples, srv, cache)
        assert engine.stats.cache_hits == 12 and engine.stats.calls == 0 and srv.total == 12

        judge = StepJudge(steps=2)
        cache.delete(_key_of(cache, "step 1 of sample s3"))
        engine, verdicts = _run(judge, samples, srv, cache)
    assert srv.total == 13  # only the deleted step went out
    assert engine.stats.cache_hits == 11 and engine.stats.calls == 1  # s3's step 0 counted once
    assert all(count == 1 for count in judge.renders.values()), judge.renders  # nothing rendered twice
    assert [v.status for v in verdicts] == [Status.OK] * 6
    assert verdicts[3].values["answers"][1]


def _key_of(cache: JudgmentCache, prompt_start: str) -> str:
    for record in cache.records():
        if record["key_parts"]["messages"][0]["content"].startswith(prompt_start):
            return str(record["key"])
    raise AssertionError(f"no record for {prompt_start!r}")


def test_a_cached_answer_hands_over_the_whole_record_on_demand(tmp_path: Path) -> None:
    samples = [_sample(n) for n in range(3)]
    with FakeServer() as srv, JudgmentCache(tmp_path / "c") as cache:
        _run(StepJudge(steps=1), samples, srv, cache)
        judge = StepJudge(steps=1, on_cached="raw")
        engine, _ = _run(judge, samples, srv, cache)
    assert engine.stats.cache_hits == 3
    assert len(judge.raws) == 3 and all(raw for raw in judge.raws)  # not in the slim fields


class CatchingJudge(Judge):
    """Catches a failed request and answers anyway: the error must reach it at its await."""

    name = "catching"
    columns = ("note",)

    @property
    def fingerprint(self) -> str:
        return "catching"

    async def judge(self, sample: Sample, ask: Ask) -> Verdict:
        spec = CallSpec(messages=[{"role": "user", "content": f"FAILME {sample.id}"}], parse=lambda r: {})
        try:
            await ask(spec)
        except RequestFailed as exc:
            return Verdict(Status.OK, {"note": f"caught: {str(exc)[:20]}"})
        return Verdict(Status.OK, {"note": "answered"})


def test_a_request_failure_reaches_the_judge_at_its_await(tmp_path: Path) -> None:
    with FakeServer() as srv, JudgmentCache(tmp_path / "c") as cache:
        srv.script("FAILME", fault="500")
        _, verdicts = _run(CatchingJudge(), [_sample(0), _sample(1)], srv, cache, max_retries=1)
    assert [v.values["note"][:7] for v in verdicts] == ["caught:", "caught:"]


class SleepyJudge(StepJudge):
    """Awaits a real sleep between its calls: the cache-first pass cannot drive it by hand."""

    name = "sleepy"

    async def judge(self, sample: Sample, ask: Ask) -> Verdict:
        first = await ask(self._spec(sample, 0))
        await asyncio.sleep(0)
        second = await ask(self._spec(sample, 1))
        return Verdict(Status.OK, {"answers": [first.parsed, second.parsed]})


def test_a_judge_that_awaits_other_things_works_in_both_passes(tmp_path: Path) -> None:
    samples = [_sample(n) for n in range(4)]
    with FakeServer(record=True) as srv, JudgmentCache(tmp_path / "c") as cache:
        _, first = _run(SleepyJudge(), samples, srv, cache)
        assert srv.total == 8
        _, again = _run(SleepyJudge(), samples, srv, cache)
    assert srv.total == 8  # the re-run (online, because of the sleep) is answered by the cache
    assert [v.values for v in again] == [v.values for v in first]
    assert all(v.status == Status.OK for v in again)


def test_max_cost_stop_still_finishes_every_cached_row(tmp_path: Path) -> None:
    samples = [_sample(n) for n in range(40)]
    with FakeServer() as srv, JudgmentCache(tmp_path / "c") as cache:
        _run(StepJudge(steps=1), samples[30:], srv, cache)  # the last ten are cached
        engine = Engine(cache, EngineSettings(concurrency=1, max_cost=0.0))
        engine.stats.cost = 1.0  # already over budget: nothing may be sent
        run = JudgeRun(StepJudge(steps=1), ModelConfig(MODEL, api_base=srv.url, api_key="sk-x", transport="fast"))
        verdicts = engine.run(samples, [run])[0]
    assert [v.status for v in verdicts[30:]] == [Status.OK] * 10
    assert all(str(v.reason).startswith("not judged") for v in verdicts[:30])


# ----------------------------------------------------------------------------- single-call judges


class EchoJudge(SingleCallJudge):
    """One call per sample; a sample marked SKIP is decided without a call."""

    name = "echo"
    columns = ("text",)

    def __init__(self) -> None:
        super().__init__()
        self.plans = 0

    @property
    def fingerprint(self) -> str:
        return "echo"

    def plan(self, sample: Sample) -> CallSpec | Verdict:
        self.plans += 1
        if "SKIP" in sample.turns[0].content:
            return self.failed("nothing to ask")
        messages = [{"role": "user", "content": sample.turns[0].content}]
        return CallSpec(messages=messages, parse=lambda r: {"text": r.text})


class CoroutineEchoJudge(EchoJudge):
    """The same judge through its own coroutine (a subclass that overrides ``judge``)."""

    async def judge(self, sample: Sample, ask: Ask) -> Verdict:
        return await super().judge(sample, ask)


def test_single_call_judges_are_planned_directly_and_agree_with_their_coroutine(tmp_path: Path, monkeypatch) -> None:
    samples = [_sample(n) for n in range(6)]
    samples[2] = Sample(id="skip", turns=[Turn("user", "SKIP me"), Turn("assistant", "-")], row={}, index=2)
    samples[4] = Sample(id="fail", turns=[Turn("user", "FAILME now"), Turn("assistant", "-")], row={}, index=4)
    assert EchoJudge.plans_directly() and not CoroutineEchoJudge.plans_directly()
    with FakeServer(record=True) as srv, JudgmentCache(tmp_path / "c") as cache:
        srv.script("FAILME", fault="500")
        with JudgmentCache(tmp_path / "coroutine") as other:
            _, expected = _run(CoroutineEchoJudge(), samples, srv, other, max_retries=1)
        sent = srv.total

        def no_coroutine(*_: Any) -> Any:
            raise AssertionError("a directly planned judge was driven through its coroutine")

        monkeypatch.setattr(SingleCallJudge, "judge", no_coroutine)
        judge = EchoJudge()
        _, fresh = _run(judge, samples, srv, cache, max_retries=1)  # misses: the online pass
        assert judge.plans == 6 and srv.total == 2 * sent  # each miss planned (rendered) once
        again_judge = EchoJudge()
        engine, again = _run(again_judge, samples, srv, cache, max_retries=1)  # hits: no loop at all
    assert [(v.status, v.values, v.reason) for v in fresh] == [(v.status, v.values, v.reason) for v in expected]
    assert [(v.status, v.values) for v in again] == [(v.status, v.values) for v in expected]
    assert [v.status for v in expected] == [Status.OK, Status.OK, Status.JUDGE_FAILED, Status.OK,
                                            Status.JUDGE_FAILED, Status.OK]
    assert expected[2].reason == "nothing to ask" and str(expected[4].reason).startswith("request failed")
    # only the failed request goes out again (a failure without a reply is no judgment to cache)
    assert (engine.stats.cache_hits, engine.stats.calls, engine.stats.requests) == (4, 0, 2)
    assert srv.total == 2 * sent + 2


# ----------------------------------------------------------------------------- group commit


def _record(key: str, size: int = 100) -> dict[str, Any]:
    return {"key": key, "status": "ok", "parsed": {"score": 4.199999999999999}, "error": None, "raw": "x" * size}


def test_records_finished_in_one_loop_turn_share_one_commit(tmp_path: Path) -> None:
    with JudgmentCache(tmp_path / "c") as cache:
        writer = GroupWriter(cache)

        async def main() -> None:
            await asyncio.gather(*(writer.put(f"wj1-k{i}", _record(f"wj1-k{i}")) for i in range(10)))
            await writer.put("wj1-last", _record("wj1-last"))

        asyncio.run(main())
        assert (writer.commits, writer.records) == (2, 11)
        assert len(cache) == 11 and cache.get("wj1-k7") == _record("wj1-k7")


def test_a_failed_group_commit_reaches_every_caller_and_writes_nothing(tmp_path: Path) -> None:
    with JudgmentCache(tmp_path / "c") as cache:
        cache._dc._con.execute(
            "CREATE TRIGGER full BEFORE INSERT ON Cache WHEN NEW.key = 'wj1-bad' "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
        writer = GroupWriter(cache)

        async def main() -> list[Any]:
            keys = ["wj1-a", "wj1-bad", "wj1-b"]
            return await asyncio.gather(*(writer.put(k, _record(k)) for k in keys), return_exceptions=True)

        outcomes = asyncio.run(main())
        assert all(isinstance(o, CacheError) and "cache.db" in str(o) for o in outcomes), outcomes
        assert len(cache) == 0  # all or none


def test_put_many_keeps_big_records_in_files_and_reads_them_back(tmp_path: Path) -> None:
    with JudgmentCache(tmp_path / "c") as cache:
        big = _record("wj1-big", size=cache._min_file_size + 10)
        cache.put_many([("wj1-small", _record("wj1-small")), ("wj1-big", big)])
        assert cache.get("wj1-big") == big
        slim = cache.get_many(["wj1-small", "wj1-big", "wj1-none"], slim=True)
    assert set(slim) == {"wj1-small", "wj1-big"}
    assert slim["wj1-big"] == {"status": "ok", "parsed": {"score": 4.199999999999999}, "error": None, "key": "wj1-big",
                               "parser_version": None}
    assert slim["wj1-small"]["parsed"]["score"] == 4.199999999999999  # numbers as stored


def test_slim_lookup_names_a_corrupt_record(tmp_path: Path) -> None:
    with JudgmentCache(tmp_path / "c") as cache:
        cache.put("wj1-good", _record("wj1-good"))
        cache._dc._con.execute("INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count,"
                               " tag, size, mode, filename, value) VALUES ('wj1-bad', 1, 0, NULL, 0, 0, NULL, 0, 1,"
                               " NULL, ?)", (b'{"status": "ok", "parsed": {',))
        with pytest.raises(CacheError, match="wj1-bad"):
            cache.get_many(["wj1-good", "wj1-bad"], slim=True)


def test_a_summary_that_breaks_the_bulk_decode_is_read_row_by_row(tmp_path: Path) -> None:
    """Summaries are decoded a chunk at a time; one that would shift the others (two arrays in
    one tag) must not pair a key with its neighbour's fields."""
    import orjson

    with JudgmentCache(tmp_path / "c") as cache:
        cache.put_many([(k, _record(k)) for k in ("wj1-a", "wj1-c")])
        whole = _record("wj1-b") | {"parsed": {"score": 1}}
        cache._dc._con.execute("INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count,"
                               " tag, size, mode, filename, value) VALUES ('wj1-b', 1, 0, NULL, 0, 0, ?, 0, 1,"
                               " NULL, ?)", (b'["ok",{"score":9},null,"wj1-x"],["ok",{},null,"wj1-y"]',
                                             orjson.dumps(whole)))
        found = cache.get_many(["wj1-a", "wj1-b", "wj1-c"], slim=True)
    assert found["wj1-b"] == {"status": "ok", "parsed": {"score": 1}, "error": None, "key": "wj1-b",
                              "parser_version": None}
    assert found["wj1-a"]["key"] == "wj1-a" and found["wj1-c"]["key"] == "wj1-c"
    assert found["wj1-c"]["parsed"] == {"score": 4.199999999999999}


def test_slim_lookups_read_only_the_covering_index(tmp_path: Path) -> None:
    with JudgmentCache(tmp_path / "c") as cache:
        cache.put_many([(f"wj1-{n}", _record(f"wj1-{n}")) for n in range(3)])
        con = cache._dc._con
        statements: list[str] = []
        con.set_trace_callback(statements.append)
        found = cache.get_many(["wj1-0", "wj1-2", "wj1-9"], slim=True)
        con.set_trace_callback(None)
        select = next(sql for sql in statements if sql.startswith("SELECT key, tag"))
        plan = " ".join(str(row[-1]) for row in con.execute("EXPLAIN QUERY PLAN " + select))
    assert sorted(found) == ["wj1-0", "wj1-2"]
    assert "COVERING INDEX Cache_winnow_slim" in plan, plan  # no table page read per record


def test_rows_without_a_summary_are_read_through_json_extract(tmp_path: Path) -> None:
    """Rows written before the summary existed (tag NULL) still answer slim look-ups."""
    import orjson

    record = _record("wj1-old")
    with JudgmentCache(tmp_path / "c") as cache:
        cache._dc._con.execute("INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count,"
                               " tag, size, mode, filename, value) VALUES ('wj1-old', 1, 0, NULL, 0, 0, NULL, 0, 1,"
                               " NULL, ?)", (orjson.dumps(record),))
        cache.put("wj1-new", _record("wj1-new"))
        tags = dict(cache._dc._con.execute("SELECT key, tag FROM Cache").fetchall())
        slim = cache.get_many(["wj1-old", "wj1-new"], slim=True)
    assert tags["wj1-old"] is None and orjson.loads(tags["wj1-new"])[0] == "ok"
    assert slim["wj1-old"] == {**{k: record[k] for k in ("status", "parsed", "error", "key")}, "parser_version": None}
    assert slim["wj1-new"]["key"] == "wj1-new"


def test_answer_reads_the_slim_fields_and_loads_the_rest_once(tmp_path: Path) -> None:
    with JudgmentCache(tmp_path / "c") as cache:
        cache.put("wj1-a", _record("wj1-a"))
        slim = cache.get_many(["wj1-a"], slim=True)["wj1-a"]
        answer = Answer(slim, cached=True, source=cache)
        assert answer.ok and answer.parsed == {"score": 4.199999999999999} and answer.key == "wj1-a"
        assert answer.record["raw"] == "x" * 100


# ----------------------------------------------------------------------------- key template

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(
    judge=st.text(min_size=1, max_size=12), model=st.text(max_size=12),
    api_base=st.none() | st.text(max_size=20), temperature=st.none() | st.floats(0, 2),
    max_tokens=st.none() | st.integers(1, 4096), stop=st.none() | st.lists(st.text(max_size=4), max_size=2),
    messages=st.lists(st.dictionaries(st.sampled_from(["role", "content", "name"]), _json, max_size=3), max_size=3),
    schema=st.none() | st.dictionaries(st.text(max_size=6), _json, max_size=3),
)
def test_key_template_gives_the_same_key_as_cache_key(judge, model, api_base, temperature, max_tokens, stop,
                                                      messages, schema) -> None:
    params = {"temperature": temperature, "max_tokens": max_tokens, "stop": stop, "timeout": 3}
    fixed = {"judge": judge, "fingerprint": "f" + judge, "model": model, "api_base": api_base, "params": params}
    template = KeyTemplate(**fixed)
    whole = key_parts(**fixed, schema=schema, messages=messages)
    assert template.key(messages, schema) == cache_key(whole)
    assert template.parts(messages, schema) == whole


