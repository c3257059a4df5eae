"""Runs judges over samples: cache lookup -> call -> parse -> cache write, per judgment.

Two passes over one stream.  The cache-first pass (``winnow.engine.feed``) judges from the
cache what it can, in batches, with no event loop, so a fully cached re-run never starts one.
What it cannot finish comes out as ``Pending`` judge coroutines suspended at the request
they need; the online pass, a pool of workers on one event loop bounded by the limiter,
has those requests answered (``winnow.engine.calls``: cache re-check, calls in flight, send,
re-ask, record) and resumes the coroutines, pulling the feed lazily so memory stays bounded.
This module owns the passes, the workers, signals and how a run ends.  Each record is committed
(``GroupWriter``: one transaction per loop turn) before its judgment counts as done, so a crash
loses only calls in flight.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import deque
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from winnow.cache import JudgmentCache
from winnow.cache.key import KeyTemplate
from winnow.engine.calls import OnlineCalls, StopDispatch
from winnow.engine.config import EngineSettings, JudgeRun
from winnow.engine.feed import CacheFeed, CallBase, Lookup, Pending, lookup_for
from winnow.engine.stats import RunStats
from winnow.engine.transport import FatalError, fatal_hint
from winnow.gcpause import gc_paused
from winnow.judges.base import PARSER_VERSION, Answer, CallSpec, RequestFailed, Verdict
from winnow.types import Sample, Status

__all__ = ["Engine", "FatalRunError", "Interrupted", "Plan", "PlannedCall"]


@dataclass(slots=True)
class PlannedCall:
    """A call a judge needs next: judge ``j`` on sample ``i``, keyed, with what the request needs."""

    j: int
    i: int
    lookup: Lookup

    @property
    def key(self) -> str:
        return self.lookup.key


@dataclass(slots=True)
class Plan:
    """What the cache answered (``verdicts[j][i]``, None where unfinished) and what to send next.

    ``unplannable``: (judge, sample) pairs whose judge awaited something other than a call, which
    only the online pass can drive."""

    verdicts: list[list[Verdict | None]]
    calls: list[PlannedCall]
    unplannable: int = 0

    def distinct_calls(self, skip: Container[str] = ()) -> list[PlannedCall]:
        """One call per key, those in ``skip`` left out: the same prompt in two rows is one
        request, which answers both."""
        seen: dict[str, PlannedCall] = {}
        for call in self.calls:
            if call.key not in skip:
                seen.setdefault(call.key, call)
        return list(seen.values())


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
        self._version = _version()
        self._fingerprints: dict[int, str] = {}  # id(judge) -> fingerprint, fixed for one run
        # id(JudgeRun) (calls without overrides, most) or (id, top_logprobs, params) -> CallBase
        self._bases: dict[int | tuple[Any, ...], CallBase] = {}

    # ------------------------------------------------------------------ public
    def run(
        self,
        samples: Sequence[Sample],
        runs: Sequence[JudgeRun],
        before_online: Callable[[], None] | None = None,
    ) -> list[list[Verdict]]:
        """Judge every sample with every judge; results[j][i] is judge j's verdict on sample i.

        ``before_online`` runs once, only if a request must be sent, before the first one (it
        may point the runs' models at a server it starts: a cached re-run starts none).
        """
        self.stats.rows_total += len(samples) * len(runs)
        # a judge's options may change between runs, never during one: hash them once per run
        self._fingerprints = {id(jr.judge): jr.judge.fingerprint for jr in runs}
        self._bases = {}
        results: list[list[Verdict | None]] = [[None] * len(samples) for _ in runs]

        def finish(j: int, i: int, verdict: Verdict) -> None:
            self._finish(results, j, i, verdict)

        stats = self.stats

        def hit(record: dict[str, Any]) -> None:
            stats.cache_hits += 1
            if record.get("parser_version") != PARSER_VERSION:
                stats.old_parser_hits += 1

        source = CacheFeed(self.cache, samples, runs, base_of=self.call_base, usable=self._usable,
                           finish=finish, on_hit=hit)
        feed = iter(source)
        with gc_paused():  # verdicts and answers stay alive; no cycles here (winnow/gcpause.py)
            first = next((batch for batch in feed if batch), None)  # cached batches finish here, no loop
        if first is not None:
            # online, a refill runs on the event loop and holds up every reply meanwhile: keep
            # it about one round of requests long
            source.batch = max(32, min(source.batch, self.settings.concurrency))
            if self.settings.offline:
                self.stats.stopped = "offline: not every judgment is cached"
                with gc_paused():
                    _drain(first, feed)
            else:
                if before_online is not None:
                    before_online()
                asyncio.run(self._online(samples, runs, first, feed, results))
        out: list[list[Verdict]] = []
        for j, row in enumerate(results):
            filled = []
            for verdict in row:
                filled.append(verdict if verdict is not None else runs[j].judge.failed(self._not_judged_reason()))
            out.append(filled)
        return out

    def plan(self, samples: Sequence[Sample], runs: Sequence[JudgeRun]) -> Plan:
        """The cache-first pass alone, sending nothing: the verdicts the cache finishes, and the
        call each unfinished (judge, sample) needs next, with its key, spec and shared params.

        The one planning step every driver shares: ``run`` drives the same pass and answers the
        calls online; the batch driver (``winnow.batch``) sends them as provider batches and
        plans again, so a judge that needs several calls goes on round by round.
        """
        self._fingerprints = {id(jr.judge): jr.judge.fingerprint for jr in runs}
        self._bases = {}
        results: list[list[Verdict | None]] = [[None] * len(samples) for _ in runs]
        stats = self.stats

        def finish(j: int, i: int, verdict: Verdict) -> None:
            results[j][i] = verdict

        def hit(record: dict[str, Any]) -> None:
            stats.cache_hits += 1

        source = CacheFeed(self.cache, samples, runs, base_of=self.call_base, usable=self._usable,
                           finish=finish, on_hit=hit)
        pending: list[Pending] = []
        with gc_paused():
            for batch in source:
                pending.extend(batch)
        calls = []
        for item in pending:
            if item.lookup is not None:
                calls.append(PlannedCall(item.j, item.i, item.lookup))
            item.close()
        return Plan(results, calls, len(pending) - len(calls))

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

    def call_base(self, jr: JudgeRun, spec: CallSpec) -> CallBase:
        """What every call of this judge with these overrides shares: key template and params.

        Everything but the schema and the messages is the same for every call of a judge with
        the same overrides, so it is built (and its key JSON encoded) once per run.
        """
        memo_key: int | tuple[Any, ...] | None = id(jr)  # most calls: no overrides, the cheapest key
        if spec.params or spec.top_logprobs:
            memo_key = (id(jr), spec.top_logprobs, tuple(spec.params.items()))
        try:
            base = self._bases.get(memo_key)  # type: ignore[arg-type]
        except TypeError:  # an unhashable override (a list of stop words): build it each time
            base = memo_key = None
        if base is None:
            base = self._new_base(jr, spec)
            if memo_key is not None:
                self._bases[memo_key] = base
        return base

    def _new_base(self, jr: JudgeRun, spec: CallSpec) -> CallBase:
        judge = jr.judge
        params = dict(judge.params)
        params.update(spec.params)
        if spec.top_logprobs:
            params["top_logprobs"] = spec.top_logprobs
        fingerprint = self._fingerprints.get(id(judge))
        template = KeyTemplate(
            judge=judge.name,
            fingerprint=fingerprint if fingerprint is not None else judge.fingerprint,
            model=jr.model.model,
            api_base=jr.model.cache_api_base,
            params=params,
        )
        return CallBase(template, params)

    def _usable(self, record: dict[str, Any] | None) -> dict[str, Any] | None:
        if record is None:
            return None
        if self.settings.retry_failed and record.get("status") != Status.OK:
            return None
        return record

    def cached_usable(self, record: dict[str, Any] | None) -> dict[str, Any] | None:
        """``record`` if this run would take it as the answer (under ``retry_failed``, only an
        ``ok`` one); the batch driver asks this of the records it finds while ingesting."""
        return self._usable(record)

    def cached(self, key: str) -> dict[str, Any] | None:
        """The usable cached record of ``key`` (for ``audit.costs``: what a run would not send)."""
        return self._usable(self.cache.get(key))

    # ------------------------------------------------------------------ online
    async def _online(
        self,
        samples: Sequence[Sample],
        runs: Sequence[JudgeRun],
        first: list[Pending],
        feed: Iterator[list[Pending]],
        results: list[list[Verdict | None]],
    ) -> None:
        settings = self.settings
        calls = OnlineCalls(self.cache, settings, self.stats, self._usable, self._version)
        queue: deque[Pending] = deque(first)
        loop = asyncio.get_running_loop()
        interrupts = 0

        def on_signal(signame: str) -> None:
            nonlocal interrupts
            interrupts += 1
            if interrupts > 1:
                os._exit(130)  # second Ctrl-C: at once; SQLite WAL keeps the cache whole
            calls.stopping = self.stats.stopped = f"interrupted by {signame}"

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, on_signal, sig.name)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass

        fatal: list[BaseException] = []

        def take() -> Pending | None:
            """The next item to send; refills from the feed (one cache batch) when empty."""
            while not queue:
                batch = next(feed, None)
                if batch is None:
                    return None
                queue.extend(batch)
            return queue.popleft()

        async def worker() -> None:
            while not (calls.stopping or fatal):
                item = take()
                if item is None:
                    return
                jr, sample = runs[item.j], samples[item.i]
                try:
                    if item.coro is not None:
                        coro, item.coro = item.coro, None
                        verdict = await self._resume(calls, jr, sample, coro, item.lookup)
                    else:
                        verdict = await jr.judge.judge(sample, self._ask_online(calls, jr, sample))
                except RequestFailed as exc:
                    verdict = jr.judge.failed(f"{exc.reason}: {exc}")
                except StopDispatch:
                    return
                except FatalError as exc:
                    fatal.append(exc)
                    return
                self._finish(results, item.j, item.i, verdict)
                if self.on_progress is not None:
                    self.on_progress(self.stats)

        # servers winnow runs itself (the local judge): polled with the workers, see _gone
        checks = list({id(c): c for jr in runs if (c := jr.model.health) is not None}.values())
        gone: BaseException | None = None
        workers = [asyncio.ensure_future(worker()) for _ in range(max(1, settings.concurrency))]
        try:
            # poll, never wait unbounded: a signal must start the grace period even while every
            # worker sits in a hung call; keep every finished task, so no worker's crash is lost
            done: set[asyncio.Future[None]] = set()
            still: set[asyncio.Future[None]] = set(workers)
            while still and not calls.stopping and not fatal:
                finished, still = await asyncio.wait(still, timeout=0.2, return_when=asyncio.FIRST_EXCEPTION)
                done |= finished
                if any(not t.cancelled() and t.exception() is not None for t in finished):
                    calls.stopping = "error"  # stop dispatching; the error is raised below
                gone = gone or _gone(checks)
                if gone is not None:
                    calls.stopping = self.stats.stopped = "the model's server is gone"
            gone = gone or next((e for e in fatal if getattr(e, "unreachable", False)), None)
            if still and gone is None:  # stopping: let in-flight calls finish within the grace period
                finished, still = await asyncio.wait(still, timeout=settings.grace_seconds)
                done |= finished
                for task in still:
                    task.cancel()
                await asyncio.gather(*still, return_exceptions=True)
            # read every task's error (one failed group commit fails several workers at once):
            # an error never read is logged as "never retrieved" when the task is collected
            errors = [task.exception() for task in done if not task.cancelled()]
            first_error = next((e for e in errors if e is not None), None)
            if first_error is not None:
                raise first_error
        finally:
            calls.writer.flush()  # records of calls that finished while stopping
            for sig in installed:
                loop.remove_signal_handler(sig)
            await calls.aclose()
        if calls.writer.error is not None:  # a final commit failed: never drop records silently
            raise calls.writer.error
        if gone is not None and not isinstance(gone, FatalError):
            raise gone
        if fatal:
            exc = fatal[0]
            hint = getattr(exc, "hint", None) or fatal_hint(getattr(exc, "status", None))
            raise FatalRunError(f"{exc}\n  hint: {hint}")
        if calls.stopping and calls.stopping.startswith("interrupted"):
            cached = self.stats.calls + self.stats.cache_hits  # the user asked how much is safe
            raise Interrupted(f"{calls.stopping} ({cached} judgments cached, {self.stats.calls} new this run)")
        _drain(list(queue), feed)  # stopped by --max-cost: still finish every cached row

    async def _resume(
        self, calls: OnlineCalls, jr: JudgeRun, sample: Sample, coro: Any, lookup: Lookup | None
    ) -> Verdict:
        """Drive a judge coroutine the cache-first pass left suspended at ``lookup``.

        Each ``Lookup`` it yields is answered by ``calls.answer`` (cache, then network) and sent
        back; an error is thrown in at the same ``await``, so the judge sees exactly what the
        plain online ``ask`` would raise.  A judge that awaits anything else is closed and run
        from the start with the real ``ask`` (its steps so far are cached by then).
        """
        while True:
            assert lookup is not None
            try:
                answer = await calls.answer(jr, sample, lookup)
            except BaseException as exc:  # passed into the judge at its await, as ask raises it
                try:
                    step = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    step = coro.send(answer)
                except StopIteration as done:
                    return done.value
            if not isinstance(step, Lookup):
                coro.close()
                return await jr.judge.judge(sample, self._ask_online(calls, jr, sample))
            lookup = step

    def _ask_online(self, calls: OnlineCalls, jr: JudgeRun, sample: Sample) -> Callable[[CallSpec], Any]:
        async def ask(spec: CallSpec) -> Answer:
            return await calls.answer(jr, sample, lookup_for(self.call_base, jr, spec))

        return ask


def _gone(checks: list[Callable[[], BaseException | None]]) -> BaseException | None:
    """The first error a server check reports (a local server that died), else None.

    Nothing sent to a dead server can finish, so the run stops at once, with no grace period:
    every judgment finished before is already committed to the cache.
    """
    for check in checks:
        error = check()
        if error is not None:
            return error
    return None


def _drain(queue: list[Pending], feed: Iterator[list[Pending]]) -> None:
    """Nothing more is sent: close what waits to be, and let the feed finish its cached rows."""
    for item in queue:
        item.close()
    for batch in feed:
        for item in batch:
            item.close()
