"""Runs judges over samples: cache lookup -> call -> parse -> cache write, per judgment.

Two passes.  The *offline* pass drives each judge coroutine by hand with an ``ask`` that
answers only from the cache, so a fully cached re-run needs no event loop, no tasks and no
network (fast enough for tens of thousands of rows a second).  It goes in batches: every
judge coroutine of a batch runs up to its first ``ask`` (which suspends on a ``_Lookup``
holding the cache key), the keys are fetched in one bulk query (``JudgmentCache.get_many``),
and the coroutines resume with their records; judges that ask again go round once more.
Samples that miss go to the *online* pass: a pool of workers on one event loop, requests
bounded by the limiter.  Each record is written the moment its call finishes, so a crash
loses only calls in flight.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable, Generator, Sequence
from itertools import islice
from typing import Any

from winnow.cache import JudgmentCache, cache_key, key_parts
from winnow.engine.config import EngineSettings, JudgeRun
from winnow.engine.pricing import cost_of
from winnow.engine.records import build_record, reask_messages, try_parse
from winnow.engine.sending import Sender
from winnow.engine.stats import RunStats
from winnow.engine.transport import ChatRequest, FatalError, fatal_hint
from winnow.engine.transports import choose_transport, make_transport
from winnow.judges.base import Answer, CallSpec, RequestFailed, Verdict
from winnow.types import Sample, Status

__all__ = ["Engine", "FatalRunError", "Interrupted"]


OFFLINE_BATCH = 2000  # judge coroutines suspended at once in the offline pass (bounds memory)


class _Lookup:
    """Awaited by the offline ``ask``: suspends the judge coroutine with its cache key.

    The driver (``Engine._offline_pass``) collects the keys of a whole batch, looks them up in
    one query and resumes each coroutine with its record; a miss closes the coroutine instead.
    """

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __await__(self) -> Generator[_Lookup, Any, Any]:
        record = yield self
        return record


class Interrupted(Exception):
    """The run was stopped by Ctrl-C / SIGTERM; finished judgments are cached."""


class FatalRunError(RuntimeError):
    """A request failed in a way no retry can fix (bad key, unknown model...)."""


def _version() -> str:
    from winnow import __version__

    return __version__


class Engine:
    def __init__(
        self,
        cache: JudgmentCache,
        settings: EngineSettings | None = None,
        stats: RunStats | None = None,
        on_progress: Callable[[RunStats], None] | None = None,
    ) -> None:
        self.cache = cache
        self.settings = settings or EngineSettings()
        self.stats = stats or RunStats()
        self.on_progress = on_progress
        self._inflight: dict[str, asyncio.Future[Answer]] = {}
        self._transports: dict[str, Any] = {}
        self._sender: Sender | None = None
        self._stopping: str | None = None
        self._version = _version()
        self._fingerprints: dict[int, str] = {}  # id(judge) -> fingerprint, fixed for one run
        self._parts_memo: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any]]] = {}

    # ------------------------------------------------------------------ public
    def run(self, samples: Sequence[Sample], runs: Sequence[JudgeRun]) -> list[list[Verdict]]:
        """Judge every sample with every judge; results[j][i] is judge j's verdict on sample i."""
        self.stats.rows_total += len(samples) * len(runs)
        # a judge's options may change between runs, never during one: hash them once per run
        self._fingerprints = {id(jr.judge): jr.judge.fingerprint for jr in runs}
        self._parts_memo = {}
        results: list[list[Verdict | None]] = [[None] * len(samples) for _ in runs]
        pending = self._offline_pass(samples, runs, results)
        if pending:
            asyncio.run(self._online(samples, runs, pending, results))
        out: list[list[Verdict]] = []
        for j, row in enumerate(results):
            filled = []
            for verdict in row:
                filled.append(verdict if verdict is not None else runs[j].judge.failed(self._not_judged_reason()))
            out.append(filled)
        return out

    # ------------------------------------------------------------ bookkeeping
    def _not_judged_reason(self) -> str:
        return f"not judged: {self.stats.stopped or 'run stopped'}"

    def _finish(self, results: list[list[Verdict | None]], j: int, i: int, verdict: Verdict) -> None:
        results[j][i] = verdict
        self.stats.rows_done += 1
        if verdict.status != Status.OK:
            self.stats.rows_failed += 1
            reason = (verdict.reason or "unknown").split(": ", 1)[0][:80]
            self.stats.failure_reasons[reason] += 1

    def _request_parts(self, jr: JudgeRun, spec: CallSpec) -> tuple[dict[str, Any], dict[str, Any]]:
        """(cache-key parts, request params) of one call.

        Everything but the schema and the messages is the same for every call of a judge with
        the same overrides, so it is built once per run (``key_parts`` with no messages) and
        copied; ``key_parts`` passes ``schema`` and ``messages`` through as they are.
        """
        memo_key: tuple[Any, ...] | None = (id(jr), spec.top_logprobs, tuple(spec.params.items()))
        try:
            memo = self._parts_memo.get(memo_key)  # type: ignore[arg-type]
        except TypeError:  # an unhashable override (a list of stop words): build it each time
            memo = memo_key = None
        if memo is None:
            judge = jr.judge
            params = dict(judge.params)
            params.update(spec.params)
            if spec.top_logprobs:
                params["top_logprobs"] = spec.top_logprobs
            fingerprint = self._fingerprints.get(id(judge))
            base = key_parts(
                judge=judge.name,
                fingerprint=fingerprint if fingerprint is not None else judge.fingerprint,
                model=jr.model.model,
                api_base=jr.model.cache_api_base,
                params=params,
                schema=None,
                messages=[],
            )
            memo = (base, params)
            if memo_key is not None:
                self._parts_memo[memo_key] = memo
        base, params = memo
        parts = {**base, "params": dict(base["params"]), "schema": spec.schema, "messages": spec.messages}
        return parts, dict(params)

    def _usable(self, record: dict[str, Any] | None) -> dict[str, Any] | None:
        if record is None:
            return None
        if self.settings.retry_failed and record.get("status") != Status.OK:
            return None
        return record

    def _cached(self, key: str) -> dict[str, Any] | None:
        return self._usable(self.cache.get(key))

    # ----------------------------------------------------------------- offline
    def _offline_pass(
        self, samples: Sequence[Sample], runs: Sequence[JudgeRun], results: list[list[Verdict | None]]
    ) -> list[tuple[int, int]]:
        """Judge from the cache what can be; returns the (judge, sample) pairs left for the network."""
        pending: list[tuple[int, int]] = []
        todo = ((j, i) for j in range(len(runs)) for i in range(len(samples)))
        asks = [self._offline_ask(jr) for jr in runs]
        while True:
            batch = list(islice(todo, OFFLINE_BATCH))
            if not batch:
                break
            waiting: list[tuple[int, int, Any, str]] = []
            for j, i in batch:
                self._advance(runs[j].judge.judge(samples[i], asks[j]), None, j, i, results, waiting, pending)
            while waiting:  # one bulk lookup per round; a judge asking again goes round again
                found = self.cache.get_many(key for *_, key in waiting)
                rounds, waiting = waiting, []
                for j, i, coro, key in rounds:
                    record = self._usable(found.get(key))
                    if record is None:
                        coro.close()  # not cached: the online pass runs this judge from the start
                        pending.append((j, i))
                    else:
                        self.stats.cache_hits += 1
                        self._advance(coro, Answer(record, cached=True), j, i, results, waiting, pending)
        pending.sort()  # dispatch in (judge, sample) order, as before the batching
        return pending

    def _advance(
        self,
        coro: Any,
        value: Answer | None,
        j: int,
        i: int,
        results: list[list[Verdict | None]],
        waiting: list[tuple[int, int, Any, str]],
        pending: list[tuple[int, int]],
    ) -> None:
        """Run a judge coroutine to its next ``ask`` (queued in ``waiting``) or to its verdict."""
        try:
            step = coro.send(value)
        except StopIteration as done:
            self._finish(results, j, i, done.value)
            return
        if isinstance(step, _Lookup):
            waiting.append((j, i, coro, step.key))
            return
        coro.close()  # the judge awaited something real; let the online pass run it
        pending.append((j, i))

    def _offline_ask(self, jr: JudgeRun) -> Callable[[CallSpec], Any]:
        async def ask(spec: CallSpec) -> Answer:
            parts, _ = self._request_parts(jr, spec)
            answer: Answer = await _Lookup(cache_key(parts))
            return answer

        return ask

    # ------------------------------------------------------------------ online
    async def _online(
        self,
        samples: Sequence[Sample],
        runs: Sequence[JudgeRun],
        pending: list[tuple[int, int]],
        results: list[list[Verdict | None]],
    ) -> None:
        settings = self.settings
        self._sender = Sender(settings, self.stats)
        queue = iter(pending)
        loop = asyncio.get_running_loop()
        interrupts = 0

        def on_signal(signame: str) -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts > 1:
                os._exit(130)  # second Ctrl-C: at once; SQLite WAL keeps the cache whole
            self._stopping = f"interrupted by {signame}"
            self.stats.stopped = self._stopping

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal, sig.name)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

        fatal: list[BaseException] = []

        async def worker() -> None:
            for j, i in queue:
                if self._stopping or fatal:
                    return
                jr, sample = runs[j], samples[i]
                try:
                    verdict = await jr.judge.judge(sample, self._ask_online(jr, sample))
                except RequestFailed as exc:
                    verdict = jr.judge.failed(f"request failed: {exc}")
                except _Stop:
                    return
                except FatalError as exc:
                    fatal.append(exc)
                    return
                self._finish(results, j, i, verdict)
                if self.on_progress is not None:
                    self.on_progress(self.stats)

        workers = [asyncio.ensure_future(worker()) for _ in range(max(1, settings.concurrency))]
        try:
            # poll, never wait unbounded: a signal must start the grace period even while every
            # worker sits in a hung call; keep every finished task, so no worker's crash is lost
            done: set[asyncio.Future[None]] = set()
            still: set[asyncio.Future[None]] = set(workers)
            while still and not self._stopping and not fatal:
                finished, still = await asyncio.wait(still, timeout=0.2, return_when=asyncio.FIRST_EXCEPTION)
                done |= finished
                if any(not t.cancelled() and t.exception() is not None for t in finished):
                    self._stopping = "error"  # stop dispatching; the error is raised below
            if still:  # stopping: let in-flight calls finish within the grace period
                finished, still = await asyncio.wait(still, timeout=settings.grace_seconds)
                done |= finished
                for task in still:
                    task.cancel()
                await asyncio.gather(*still, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            for transport in self._transports.values():
                await transport.aclose()
        if fatal:
            exc = fatal[0]
            status = getattr(exc, "status", None)
            raise FatalRunError(f"{exc}\n  hint: {fatal_hint(status)}")
        if self._stopping and self._stopping.startswith("interrupted"):
            cached = self.stats.calls + self.stats.cache_hits  # the user asked how much is safe
            raise Interrupted(f"{self._stopping} ({cached} judgments cached, {self.stats.calls} new this run)")

    def _transport_for(self, jr: JudgeRun) -> Any:
        kind = choose_transport(jr.model)
        if kind not in self._transports:
            self._transports[kind] = make_transport(kind, self.settings.concurrency)
        return self._transports[kind]

    def _ask_online(self, jr: JudgeRun, sample: Sample) -> Callable[[CallSpec], Any]:
        async def ask(spec: CallSpec) -> Answer:
            parts, params = self._request_parts(jr, spec)
            key = cache_key(parts)
            record = self._cached(key)
            if record is not None:
                self.stats.cache_hits += 1
                return Answer(record, cached=True)
            shared = self._inflight.get(key)
            if shared is not None:  # the same prompt is already on its way
                return await asyncio.shield(shared)
            if self._stopping:
                raise _Stop
            if self.settings.offline:
                self._stopping = self.stats.stopped = "offline: not every judgment is cached"
                raise _Stop
            if self.settings.max_cost is not None and self.stats.cost >= self.settings.max_cost:
                self._stopping = self.stats.stopped = f"--max-cost {self.settings.max_cost:g} reached"
                raise _Stop
            future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
            try:
                answer = await self._call(jr, sample, spec, parts, params, key)
            except BaseException as exc:
                future.set_exception(exc)
                future.exception()  # mark retrieved: waiters re-raise it themselves
                raise
            finally:
                self._inflight.pop(key, None)
            future.set_result(answer)
            return answer

        return ask

    async def _call(
        self, jr: JudgeRun, sample: Sample, spec: CallSpec, parts: dict[str, Any], params: dict[str, Any], key: str
    ) -> Answer:
        transport = self._transport_for(jr)
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
        )
        sender = self._sender
        assert sender is not None
        started = time.monotonic()
        reply, attempts = await sender.send(transport, request)
        parsed, error = try_parse(spec, reply)
        reask_log: list[dict[str, Any]] = []
        replies = [reply]
        while error is not None and len(reask_log) < self.settings.reasks and not self._stopping:
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
            key=key, parts=parts, judge=jr.judge.name, spec=spec, sample_id=sample.id, model=jr.model.model,
            replies=replies, parsed=parsed, error=error, reasks=reask_log, attempts=attempts, cost=cost,
            latency=time.monotonic() - started, transport=transport.name, version=self._version,
        )
        self.cache.put(key, record)
        return Answer(record, cached=False)

class _Stop(Exception):
    """Dispatch stopped (interrupt or budget): the sample stays unjudged."""
