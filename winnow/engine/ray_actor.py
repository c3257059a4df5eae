"""The Ray side of ``--engine ray``: a Ray Data actor that answers planned calls with the local
engine's own online core (``OnlineCalls``: limiter, retries, re-ask, parse, record).

A call arrives as plain data (``ray_engine.payload``); the actor rebuilds what ``OnlineCalls``
needs from it, the parser from the record's own facts (``judges.reparse.parser_for``, as
``winnow reparse`` finds it; user judges from the judge files the driver shipped), and returns
the finished record as JSON text: ``""`` for a call that got no reply.  A failure is a row,
never an exception, which would abort the whole dataset.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

__all__ = ["CallActor"]

HAND_OVER_EVERY = 0.05  # seconds between an actor's hand-overs of answers to the ledger


class _NoCache:
    """The actor's cache: none (the driver's is the only one); every lookup misses."""

    def get(self, key: str) -> None:
        return None

    def put_many(self, items: Any) -> None:
        return None


class _Parts:
    """The key parts the driver computed, for ``build_record`` (no template on the actor)."""

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


class CallActor:
    """One ``OnlineCalls`` per actor, on the actor's own event loop, made on first use: objects
    made in ``__init__`` would sit on another loop (ray#47734).  Several batches run at once on
    that loop and share its limiter, so the actor keeps ``concurrency`` requests in flight while
    one batch ends and the next begins."""

    def __init__(self, settings: dict[str, Any], api_key: str | None, user_judges: dict[str, str],
                 ledger: Any = None) -> None:
        self.settings = settings
        self.api_key = api_key
        self.user_judge_files = user_judges
        self.user_judges: dict[str, Any] | None = None
        self.ledger = ledger  # ray_ledger.AnswerLedger's handle, or None
        self.calls: Any = None
        self._runs: dict[tuple[str, str, str, str], Any] = {}
        # answered calls whose batch has not returned, not yet handed to the ledger
        self._waiting: dict[str, str] = {}
        self._timer: Any = None

    async def __call__(self, batch: dict[str, Any]) -> AsyncIterator[dict[str, list[Any]]]:
        from winnow import __version__
        from winnow.engine.calls import OnlineCalls
        from winnow.engine.config import EngineSettings

        if self.calls is None:
            self.calls = OnlineCalls(_NoCache(), EngineSettings(**self.settings), _stats(),  # type: ignore[arg-type]
                                     lambda r: r, __version__)
        if self.user_judges is None:
            from winnow.judges.user import user_judge_from_text

            self.user_judges = {name: user_judge_from_text(text) for name, text in self.user_judge_files.items()}
        keys = [str(k) for k in batch["key"]]
        known = await self._known(keys)  # a batch Ray re-runs after its actor died

        async def answer(i: int, key: str) -> str:
            if key in known:
                return known[key]
            record = await self._one(batch, i, key)
            if record:
                self._hand_over(key, record)
            return record

        # one answer block a batch (a batch is one round of the actor's in-flight calls): each
        # block costs Ray ~8 ms of CPU, so chunks of a quarter batch cost 0.5 ms a row more
        records = await asyncio.gather(*(answer(i, key) for i, key in enumerate(keys)))
        for key in keys:  # returned with the batch now
            self._waiting.pop(key, None)
        yield {"key": keys, "record": list(records)}

    async def _known(self, keys: list[str]) -> dict[str, str]:
        if self.ledger is None:
            return {}
        try:
            return dict(await self.ledger.known.remote(keys))
        except Exception:  # no ledger (its node is gone): send them all, as without one
            self.ledger = None
            return {}

    def _hand_over(self, key: str, record: str) -> None:
        """Keep an answer until its batch returns, and hand every waiting answer to the ledger
        HAND_OVER_EVERY seconds, in one call: Ray charges ~1 ms of CPU a ledger call, so a call
        per few answers cost 0.1-0.2 ms a row, and this costs a call per actor per interval."""
        if self.ledger is None:
            return
        self._waiting[key] = record
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(HAND_OVER_EVERY, self._hand_over_waiting)

    def _hand_over_waiting(self) -> None:
        self._timer = None
        if self._waiting and self.ledger is not None:
            try:
                self.ledger.put.remote(list(self._waiting), list(self._waiting.values()))  # not awaited
            except Exception:
                self.ledger = None
        self._waiting = {}

    async def _one(self, batch: dict[str, Any], i: int, key: str) -> str:
        from winnow.engine.feed import CallBase, Lookup
        from winnow.judges.base import CallSpec
        from winnow.judges.reparse import parser_for

        try:
            data = orjson.loads(batch["spec"][i])
            parts, params = orjson.loads(batch["parts"][i]), orjson.loads(batch["base_params"][i])
            judge = str(batch["judge"][i])
            # the parser from the facts its record will carry, as `winnow reparse` finds it
            parser = parser_for({"judge": judge, "purpose": data["purpose"], "params": params,
                                 "fingerprint": parts["fingerprint"], "key_parts": parts}, self.user_judges)
            spec = CallSpec(messages=parts["messages"], parse=parser, purpose=data["purpose"], schema=parts["schema"],
                            top_logprobs=data["top_logprobs"], params=data["params"], format_hint=data["format_hint"])
            base = CallBase(_Parts(parts), params)  # type: ignore[arg-type]
            run = self._run(judge, str(batch["model"][i]), str(batch["api_base"][i] or ""), str(batch["api_bases"][i]))
            answer = await self.calls.answer(run, _Sampled(str(batch["sample_id"][i])), Lookup(key, spec, base))
        except Exception:  # no reply (RequestFailed) or a fault of this call: the row's, not the dataset's
            return ""  # the driver's offline pass reports the row "not judged"; the next run asks again
        return orjson.dumps(answer.record).decode()

    def _run(self, judge: str, model: str, api_base: str, api_bases: str) -> Any:
        """One ``JudgeRun`` per judge and endpoint set, as the local engine has: ``OnlineCalls``
        picks a run's transport once, by the run's identity."""
        key = (judge, model, api_base, api_bases)
        run = self._runs.get(key)
        if run is None:
            from winnow.engine.config import JudgeRun, ModelConfig

            bases = tuple(u for u in api_bases.split("\n") if u)
            config = ModelConfig(model=model, api_base=api_base or None, api_key=self.api_key, api_bases=bases)
            run = self._runs[key] = JudgeRun(_Named(judge), config)  # type: ignore[arg-type]
        return run


def _stats() -> Any:
    from winnow.engine.stats import RunStats

    return RunStats()
