"""``--engine ray``: the calls a run needs, answered by actors on a Ray cluster, into the driver's cache.

A thin adapter over the same planning and the same online core (docs/ray.md):

1. the driver plans (``Engine.plan``: the cache-first pass), so only misses travel;
2. each planned call goes to the actors as plain data (messages, schema, params, key parts: no
   judge objects, no parser closures), through Ray Data ``map_batches`` with an async callable
   class: per actor, one event loop and one ``OnlineCalls`` (limiter, retries, re-ask, parse,
   record), exactly what the local engine runs; the parser comes from the record's own facts
   (``judges.reparse.parser_for``), as ``winnow reparse`` finds it;
3. actors return whole records; the driver commits them to its cache as batches stream back
   (the cache is never shared over a network filesystem), and plans again, so a judge that
   needs several calls goes on in rounds;
4. the ordinary engine then judges every row from the cache.

A failed request is a row (an error string), never an exception that would abort the dataset;
a killed actor costs its batch (Ray re-runs it; batches are one actor's in-flight calls); a killed
driver, resumed, re-sends at most the calls in flight.  Rate limits are per actor (partitioned):
each actor's limiter halves on a 429 and waits out Retry-After on its own.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["RayOptions", "judge_on_ray"]

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
BATCH_ROUNDS = 8


@dataclass
class RayOptions:
    address: str | None = None  # None: a local Ray on loopback, started and stopped for the run
    actors: int = 2
    in_flight_per_actor: int = 64


def _ray() -> Any:
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    try:
        import ray
        import ray.data
    except ImportError:
        raise RuntimeError("--engine ray needs Ray: pip install 'winnow-llm[ray]'") from None
    return ray


def _payload(jr: Any, sample: Any, call: Any) -> dict[str, Any]:
    """One planned call as plain data: everything sending, parsing and recording it needs."""
    spec, base = call.lookup.spec, call.lookup.base
    record_like = {"judge": jr.judge.name, "purpose": spec.purpose, "params": dict(base.params),
                   "key_parts": {"schema": spec.schema, "messages": spec.messages}}
    return {
        "key": call.key, "judge": jr.judge.name, "model": jr.model.model, "api_base": jr.model.api_base,
        "api_bases": "\n".join(jr.model.api_bases), "sample_id": sample.id,
        "spec": orjson.dumps({"messages": spec.messages, "schema": spec.schema, "purpose": spec.purpose,
                              "top_logprobs": spec.top_logprobs, "params": spec.params,
                              "format_hint": spec.format_hint}).decode(),
        "base_params": orjson.dumps(base.params).decode(),
        "parts": orjson.dumps(base.template.parts(spec.messages, spec.schema)).decode(),
        "record_like": orjson.dumps(record_like).decode(),
    }


def judge_on_ray(engine: Any, samples: Any, runs: Any, options: RayOptions, *, api_key: str | None = None,
                 on_round: Any = None) -> int:
    """Answer every call the run needs on Ray and commit the records to ``engine.cache``.
    Returns the number of records committed; the caller then runs the engine (all cached)."""
    from winnow.engine.config import EngineSettings
    from winnow.judges.user import UserJudge

    if any(isinstance(jr.judge, UserJudge) for jr in runs):
        raise ValueError("--engine ray runs the built-in judges; run user judges with the local engine")
    ray = _ray()
    started = False
    if not ray.is_initialized():
        if options.address:
            ray.init(address=options.address, logging_level="ERROR", log_to_driver=False)
        else:
            ray.init(num_cpus=max(2, options.actors), include_dashboard=False, _node_ip_address="127.0.0.1",
                     logging_level="ERROR", log_to_driver=False)
            started = True
    settings: EngineSettings = engine.settings
    from winnow.engine.runner import Engine

    planner = Engine(engine.cache, settings)  # its own counters: the caller's count the final pass
    committed = 0
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.verbose_progress = False
        # small output blocks: each round an actor yields reaches the driver (and its cache) at
        # once, instead of being re-blocked with the rest of the batch
        ctx.target_max_block_size = 64 * 1024
        for _ in range(64):  # rounds: a multi-call judge's next call needs the previous answer
            calls = planner.plan(samples, runs).distinct_calls()
            if not calls:
                break
            items = [_payload(runs[c.j], samples[c.i], c) for c in calls]
            in_flight = max(1, options.in_flight_per_actor)
            # a batch is BATCH_ROUNDS rounds of an actor's in-flight calls: Ray's cost per batch
            # (~0.3 s here) is paid per several rounds, and a killed actor costs one batch
            per_batch = in_flight * BATCH_ROUNDS
            dataset = ray.data.from_items(items).repartition(target_num_rows_per_block=per_batch)
            answered = dataset.map_batches(
                _CallActor, fn_constructor_kwargs={"settings": _settings_dict(settings, in_flight),
                                                   "api_key": api_key},
                batch_size=per_batch, concurrency=max(1, options.actors), num_cpus=0,
            )
            failed = 0
            for batch in answered.iter_batches(batch_size=None, batch_format="default"):
                records = [(k, orjson.loads(r)) for k, r in zip(batch["key"], batch["record"], strict=True) if r]
                failed += sum(1 for r in batch["record"] if not r)
                engine.cache.put_many(records)
                committed += len(records)
            if on_round is not None:
                on_round(len(items), failed)
            if failed == len(items):
                break  # nothing answered this round: the offline pass reports the rows
    finally:
        if started:
            ray.shutdown()
    return committed


def _settings_dict(settings: Any, in_flight: int) -> dict[str, Any]:
    return {"concurrency": in_flight, "timeout": settings.timeout, "max_retries": settings.max_retries,
            "backoff_initial": settings.backoff_initial, "backoff_max": settings.backoff_max,
            "reasks": settings.reasks, "rpm": settings.rpm, "tpm": settings.tpm}


class _NoCache:
    """The actor's cache: none (the driver's is the only one); every lookup misses."""

    def get(self, key: str) -> None:
        return None

    def put_many(self, items: Any) -> None:
        return None


class _Parts:
    def __init__(self, parts: dict[str, Any]) -> None:
        self._parts = parts

    def parts(self, messages: Any, schema: Any) -> dict[str, Any]:
        return self._parts


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name


class _Sampled:
    def __init__(self, sample_id: str) -> None:
        self.id = sample_id


class _CallActor:
    """A Ray Data actor: one ``OnlineCalls`` on the actor's own event loop, made on first use
    (objects made in ``__init__`` would sit on another loop, ray#47734)."""

    def __init__(self, settings: dict[str, Any], api_key: str | None) -> None:
        self.settings = settings
        self.api_key = api_key
        self.calls: Any = None

    async def __call__(self, batch: dict[str, Any]) -> AsyncIterator[dict[str, list[Any]]]:
        from winnow import __version__
        from winnow.engine.calls import OnlineCalls
        from winnow.engine.config import EngineSettings, JudgeRun, ModelConfig
        from winnow.engine.feed import CallBase, Lookup
        from winnow.engine.stats import RunStats
        from winnow.judges.base import CallSpec, RequestFailed
        from winnow.judges.reparse import parser_for

        if self.calls is None:
            self.calls = OnlineCalls(_NoCache(), EngineSettings(**self.settings), RunStats(),  # type: ignore[arg-type]
                                     lambda r: r, __version__)
        keys = [str(k) for k in batch["key"]]

        async def one(i: int) -> str:
            spec_data = orjson.loads(batch["spec"][i])
            parser = parser_for(orjson.loads(batch["record_like"][i]))
            spec = CallSpec(messages=spec_data["messages"], parse=parser, purpose=spec_data["purpose"],
                            schema=spec_data["schema"], top_logprobs=spec_data["top_logprobs"],
                            params=spec_data["params"], format_hint=spec_data["format_hint"])
            base = CallBase(_Parts(orjson.loads(batch["parts"][i])), orjson.loads(batch["base_params"][i]))  # type: ignore[arg-type]
            bases = tuple(u for u in str(batch["api_bases"][i]).split("\n") if u)
            model = ModelConfig(model=str(batch["model"][i]), api_base=str(batch["api_base"][i] or "") or None,
                                api_key=self.api_key, api_bases=bases)
            run = JudgeRun(_Named(str(batch["judge"][i])), model)  # type: ignore[arg-type]
            try:
                sampled: Any = _Sampled(str(batch["sample_id"][i]))
                answer = await self.calls.answer(run, sampled, Lookup(keys[i], spec, base))
            except RequestFailed:
                return ""  # no reply is no judgment: the row is reported by the driver's offline pass
            except Exception:  # a fault of one call stays a row's fault, never the dataset's
                return ""
            return orjson.dumps(answer.record).decode()

        # yield answers as they come, a round at a time: the driver commits them while the rest of
        # the batch is still in flight, so a killed driver loses only calls in flight
        async def keyed(i: int) -> tuple[str, str]:
            return keys[i], await one(i)

        round_size = int(self.settings["concurrency"])
        done_keys: list[str] = []
        done_records: list[str] = []
        for finished in asyncio.as_completed([keyed(i) for i in range(len(keys))]):
            key, record = await finished
            done_keys.append(key)
            done_records.append(record)
            if len(done_keys) >= round_size:
                yield {"key": done_keys, "record": done_records}
                done_keys, done_records = [], []
        if done_keys:
            yield {"key": done_keys, "record": done_records}
