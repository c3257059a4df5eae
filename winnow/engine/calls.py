"""Answering one call online: the cache, the same call already in flight, or a request.

The online pass asks ``OnlineCalls.answer`` for every call a judge awaits.  It re-checks the
cache first (another process sharing the cache, or a duplicate prompt answered meanwhile: never
pay twice), joins a call already on its way with the same key, stops dispatching when the run
is stopping or over ``--max-cost``, and otherwise sends the request (retries in ``Sender``),
re-asks once on an unparseable reply, accounts tokens and cost, and commits the record
(``GroupWriter``) before the answer counts: a crash loses only calls in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from winnow.cache import JudgmentCache
from winnow.engine.config import EngineSettings, JudgeRun
from winnow.engine.feed import Lookup
from winnow.engine.pricing import cost_of
from winnow.engine.records import build_record, reask_messages, try_parse
from winnow.engine.sending import Sender
from winnow.engine.stats import RunStats
from winnow.engine.transport import ChatRequest
from winnow.engine.transports import choose_transport, make_transport
from winnow.engine.writer import GroupWriter
from winnow.judges.base import Answer
from winnow.types import Sample

__all__ = ["OnlineCalls", "StopDispatch"]


class StopDispatch(Exception):
    """Dispatch stopped (interrupt, error or budget): the sample stays unjudged."""


class OnlineCalls:
    """The state one online pass shares between its workers: transports, calls in flight,
    the group writer, and why dispatch stopped (``stopping``; None while it goes on)."""

    def __init__(
        self,
        cache: JudgmentCache,
        settings: EngineSettings,
        stats: RunStats,
        usable: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        version: str,
    ) -> None:
        self.cache = cache
        self.settings = settings
        self.stats = stats
        self.usable = usable
        self.version = version
        self.sender = Sender(settings, stats)
        self.writer = GroupWriter(cache)
        self.stopping: str | None = None
        self._inflight: dict[str, asyncio.Future[Answer]] = {}
        self._transports: dict[str, Any] = {}  # transport kind -> one shared instance
        self._by_run: dict[int, Any] = {}  # id(JudgeRun) -> its transport, chosen once

    async def answer(self, jr: JudgeRun, sample: Sample, lookup: Lookup) -> Answer:
        """The answer to one call: the cache (a duplicate prompt answered meanwhile, or another
        process sharing the cache), the same call already in flight, or a new request."""
        key = lookup.key
        record = self.usable(self.cache.get(key))
        if record is not None:
            self.stats.cache_hits += 1
            return Answer(record, cached=True)
        shared = self._inflight.get(key)
        if shared is not None:  # the same prompt is already on its way: answered without a call
            self.stats.cache_hits += 1  # so "from cache" + "new" adds up to the judgments made
            return await asyncio.shield(shared)
        if self.stopping:
            raise StopDispatch
        if self.settings.max_cost is not None and self.stats.cost >= self.settings.max_cost:
            self.stopping = self.stats.stopped = f"--max-cost {self.settings.max_cost:g} reached"
            raise StopDispatch
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            answer = await self._call(jr, sample, lookup)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(answer)
        return answer

    async def _call(self, jr: JudgeRun, sample: Sample, lookup: Lookup) -> Answer:
        spec, key, base = lookup.spec, lookup.key, lookup.base
        params = base.params
        transport = self.transport_for(jr)
        self.stats.transports[transport.name] += 1
        request = ChatRequest(
            model=jr.model.model,
            messages=spec.messages,
            params={k: v for k, v in params.items() if k != "top_logprobs"},
            schema=spec.schema,
            top_logprobs=spec.top_logprobs,
            api_base=jr.model.api_base,
            api_key=jr.model.api_key,
            timeout=self.settings.timeout,
            endpoints=jr.model.api_bases,
        )
        sender = self.sender
        started = time.monotonic()
        reply, attempts = await sender.send(transport, request)
        parsed, error = try_parse(spec, reply)
        reask_log: list[dict[str, Any]] = []
        replies = [reply]
        while error is not None and len(reask_log) < self.settings.reasks and not self.stopping:
            self.stats.reasks += 1
            reask_log.append({"raw": reply.text, "error": error})
            request.messages = reask_messages(spec, reply, error)
            reply, more = await sender.send(transport, request)
            attempts += more
            replies.append(reply)
            parsed, error = try_parse(spec, reply)
        prompt_tokens = sum(r.usage.prompt_tokens for r in replies)
        completion_tokens = sum(r.usage.completion_tokens for r in replies)
        # the fast transport prices from litellm's table without importing litellm (~5 s)
        cost = getattr(transport, "cost_of", cost_of)(jr.model.model, prompt_tokens, completion_tokens)
        self.stats.calls += 1
        self.stats.prompt_tokens += prompt_tokens
        self.stats.completion_tokens += completion_tokens
        self.stats.cost += cost
        record = build_record(
            key=key, parts=base.template.parts(spec.messages, spec.schema), judge=jr.judge.name, spec=spec,
            sample_id=sample.id, model=jr.model.model,
            replies=replies, parsed=parsed, error=error, reasks=reask_log, attempts=attempts, cost=cost,
            latency=time.monotonic() - started, transport=transport.name, version=self.version,
        )
        await self.writer.put(key, record)
        return Answer(record, cached=False)

    def transport_for(self, jr: JudgeRun) -> Any:
        transport = self._by_run.get(id(jr))
        if transport is None:
            kind = choose_transport(jr.model)
            if kind not in self._transports:
                self._transports[kind] = make_transport(kind, self.settings.concurrency)
            transport = self._by_run[id(jr)] = self._transports[kind]
        return transport

    async def aclose(self) -> None:
        for transport in self._transports.values():
            await transport.aclose()

