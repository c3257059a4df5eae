"""``--engine ray``: the calls a run needs, answered by actors on a Ray cluster, into the driver's cache.

A thin adapter over the same planning and the same online core (docs/ray.md):

1. the driver plans (``Engine.plan``: the cache-first pass), so only misses travel;
2. each planned call goes to the actors as plain data (``payload``: messages, schema, params, key
   parts; no judge objects, no parser closures) through Ray Data ``map_batches`` over an async
   callable class (``ray_actor.CallActor``), which answers it with the local engine's
   ``OnlineCalls``;
3. actors return whole records; the driver commits them to its cache as they stream back (the
   cache is never shared over a network filesystem), and plans again, so a judge that needs
   several calls goes on in rounds;
4. the ordinary engine then judges every row from the cache.

A batch is one actor's in-flight calls, and each actor runs ``TASKS_PER_ACTOR`` batches at once
on one limiter: a new batch starts while the last one's slowest calls are still out, so the actor
keeps its requests in flight (batches of 8 rounds, one at a time, reached 0.64x the local engine;
this, 1.0x: BENCHMARKS.md).  A failed request is a row, never an exception that would abort the
dataset; a killed actor costs its calls in flight (Ray re-runs its batches, which take the
answers it already had from the ``ray_ledger.AnswerLedger``); a killed driver, resumed, re-sends
at most the calls in flight.  Rate limits are per actor (partitioned): each
actor's limiter halves on a 429 and waits out Retry-After on its own.
"""

from __future__ import annotations

import gc
import warnings
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["RayOptions", "judge_on_ray", "payload"]

TASKS_PER_ACTOR = 4
MAX_ROUNDS = 64


@dataclass
class RayOptions:
    address: str | None = None  # None: a local Ray on loopback, started and stopped for the run
    actors: int = 2
    in_flight_per_actor: int = 64


def payload(jr: Any, sample: Any, call: Any) -> dict[str, Any]:
    """One planned call as plain data: everything sending, parsing and recording it needs.  The
    messages and schema travel once, in the key parts (the record keeps them there too)."""
    spec, base = call.lookup.spec, call.lookup.base
    return {
        "key": call.key, "judge": jr.judge.name, "model": jr.model.model, "api_base": jr.model.api_base,
        "api_bases": "\n".join(jr.model.api_bases), "sample_id": sample.id,
        "spec": orjson.dumps({"purpose": spec.purpose, "top_logprobs": spec.top_logprobs, "params": spec.params,
                              "format_hint": spec.format_hint}).decode(),
        "base_params": orjson.dumps(base.params).decode(),
        "parts": orjson.dumps(base.template.parts(spec.messages, spec.schema)).decode(),
    }


def judge_on_ray(engine: Any, samples: Any, runs: Any, options: RayOptions, *, api_key: str | None = None,
                 on_round: Any = None) -> int:
    """Answer every call the run needs on Ray and commit the records to ``engine.cache``.
    Returns the number of records committed; the caller then runs the engine (all cached)."""
    from winnow.engine.ray_session import ray_session
    from winnow.engine.runner import Engine
    from winnow.judges.user import UserJudge, user_judge_text

    user_judges = {jr.judge.name: user_judge_text(jr.judge) for jr in runs if isinstance(jr.judge, UserJudge)}
    planner = Engine(engine.cache, engine.settings)  # its own counters: the caller's count the final pass
    in_flight = max(1, options.in_flight_per_actor)
    actors = max(1, options.actors)
    settings = _settings_dict(engine.settings, in_flight)
    committed = 0
    with ray_session(options.address, cpus=actors + 1) as ray:  # a CPU an actor, one for the rest
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.verbose_progress = False
        ctx.target_max_block_size = 64 * 1024  # each chunk an actor yields reaches the driver at once
        compute = ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=TASKS_PER_ACTOR,
                                             max_concurrent_calls_per_actor=TASKS_PER_ACTOR)
        from winnow.engine.ray_ledger import AnswerLedger

        ledger: Any = ray.remote(num_cpus=0)(AnswerLedger).remote()
        try:
            for _ in range(MAX_ROUNDS):  # rounds: a multi-call judge's next call needs the previous answer
                calls = planner.plan(samples, runs).distinct_calls()
                if not calls:
                    break
                items = [payload(runs[c.j], samples[c.i], c) for c in calls]
                answered, failed = _round(ray, items, engine.cache, compute, in_flight, ledger,
                                          {"settings": settings, "api_key": api_key, "user_judges": user_judges,
                                           "ledger": ledger})
                committed += answered
                if on_round is not None:
                    on_round(len(items), failed)
                if failed == len(items):
                    break  # nothing answered this round: the offline pass reports the rows
        finally:
            ledger = None
            # no Ray object may outlive its session: a block ref collected after the next
            # ray.init in this process frees that session's object of the same id (Ray 2.60)
            gc.collect()
    return committed


def _round(ray: Any, items: list[dict[str, Any]], cache: Any, compute: Any, in_flight: int, ledger: Any,
           actor_args: dict[str, Any]) -> tuple[int, int]:
    """One round's calls through the actors, each record committed as it arrives: (committed, failed)."""
    from winnow.engine.ray_actor import CallActor

    # one block per batch, made here: a repartition step fed the actors one block at a time
    blocks = -(-len(items) // in_flight)
    with warnings.catch_warnings():
        # SPREAD (one actor a node before two on one) has no named parameter in Ray 2.60, whose
        # **ray_remote_args warns of removal in 2.64 (hence the extra's pin)
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        answered = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            CallActor, batch_size=None, compute=compute, num_cpus=1, scheduling_strategy="SPREAD",
            fn_constructor_kwargs=actor_args,
        )
    committed = failed = 0
    for batch in answered.iter_batches(batch_size=None, batch_format="default"):
        records = [(k, orjson.loads(r)) for k, r in zip(batch["key"], batch["record"], strict=True) if r]
        failed += sum(1 for r in batch["record"] if not r)
        cache.put_many(records)
        committed += len(records)
        ledger.forget.remote(list(batch["key"]))  # committed: the ledger keeps only batches running
    return committed, failed


def _settings_dict(settings: Any, in_flight: int) -> dict[str, Any]:
    return {"concurrency": in_flight, "timeout": settings.timeout, "max_retries": settings.max_retries,
            "backoff_initial": settings.backoff_initial, "backoff_max": settings.backoff_max,
            "reasks": settings.reasks, "rpm": settings.rpm, "tpm": settings.tpm}
