"""The cache-first pass: judge from the cache what can be, batch by batch, without an event loop.

Each judge coroutine gets an ``ask`` that never sends anything: it suspends the coroutine on
a ``Lookup`` holding the call's cache key (and what the network would need: spec, key parts,
params).  ``CacheFeed`` drives a batch of coroutines by hand up to their first ``ask``,
fetches all their keys in one bulk query, and resumes each with its cached answer; a judge
that asks again goes round once more.  A coroutine whose key is not cached is *not* thrown
away: it leaves the feed as a ``Pending`` still suspended at that ``Lookup``, and the online
pass sends that very request and resumes it.  So a miss costs one rendering, not two, and a
multi-call judge (DEITA evol) does not re-read the steps already answered.

Single-call judges (``SingleCallJudge``: AlpaGasus, user judges) skip the coroutine: the feed
calls ``plan`` and, on a hit, ``conclude`` itself; only a miss gets a small coroutine suspended
at its ``Lookup``, so the online pass sees the same ``Pending`` either way.

The feed is a generator of batches, so the online pass can pull it lazily: memory holds one
batch of suspended coroutines plus those in flight, whatever the dataset's size, and a fully
cached re-run never starts an event loop (tens of thousands of rows a second).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any

from winnow.cache import JudgmentCache
from winnow.cache.key import KeyTemplate
from winnow.engine.config import JudgeRun
from winnow.judges.base import Answer, Ask, CallSpec, SingleCallJudge, Verdict
from winnow.types import Sample

__all__ = ["FEED_BATCH", "CacheFeed", "CallBase", "Lookup", "Pending", "lookup_for"]

FEED_BATCH = 500  # judge coroutines suspended at once (one bulk SELECT); bounds memory

class CallBase:
    """What all calls of one judge (with the same overrides) share in a run."""

    __slots__ = ("params", "template")

    def __init__(self, template: KeyTemplate, params: dict[str, Any]) -> None:
        self.template = template  # the fixed key parts, pre-encoded
        self.params = params  # sampling params sent with the request (top_logprobs included)


BaseOf = Callable[[JudgeRun, CallSpec], CallBase]


class Lookup:
    """One call a judge wants answered: awaited, it suspends the judge with everything the
    cache (``key``) and the network (``spec``, ``base``) need to answer it."""

    __slots__ = ("base", "key", "spec")

    def __init__(self, key: str, spec: CallSpec, base: CallBase) -> None:
        self.key = key
        self.spec = spec
        self.base = base

    def __await__(self) -> Generator[Lookup, Any, Any]:
        answer = yield self
        return answer


def lookup_for(base_of: BaseOf, jr: JudgeRun, spec: CallSpec) -> Lookup:
    base = base_of(jr, spec)
    return Lookup(base.template.key(spec.messages, spec.schema), spec, base)


@dataclass(slots=True)
class Pending:
    """A (judge j, sample i) the cache could not finish.

    ``coro`` is the judge coroutine suspended at ``lookup`` (send it the answer to go on), or
    None when the judge awaited something other than ``ask``: the online pass then runs the
    judge from the start with the real ``ask``.
    """

    j: int
    i: int
    coro: Any | None
    lookup: Lookup | None

    def close(self) -> None:
        if self.coro is not None:
            self.coro.close()
            self.coro = None


class CacheFeed:
    """Yields, batch by batch, the ``Pending`` items of a run after finishing its cached ones."""

    def __init__(
        self,
        cache: JudgmentCache,
        samples: Sequence[Sample],
        runs: Sequence[JudgeRun],
        *,
        base_of: BaseOf,
        usable: Callable[[dict[str, Any] | None], dict[str, Any] | None],
        finish: Callable[[int, int, Verdict], None],
        on_hit: Callable[[dict[str, Any]], None],
        batch: int = FEED_BATCH,
    ) -> None:
        self.cache = cache
        self.samples = samples
        self.runs = runs
        self.base_of = base_of
        self.usable = usable
        self.finish = finish
        self.on_hit = on_hit
        self.batch = batch

    def _ask(self, jr: JudgeRun) -> Ask:
        base_of = self.base_of

        def ask(spec: CallSpec) -> Lookup:
            # the Lookup itself is the awaitable: no coroutine frame per call in a re-run
            return lookup_for(base_of, jr, spec)

        return ask  # awaiting the Lookup gives the Answer

    def __iter__(self) -> Iterator[list[Pending]]:
        samples, runs, cache, base_of = self.samples, self.runs, self.cache, self.base_of
        usable, finish, on_hit = self.usable, self.finish, self.on_hit
        todo = ((j, i) for j in range(len(runs)) for i in range(len(samples)))
        asks = [self._ask(jr) for jr in runs]
        judges = [jr.judge for jr in runs]
        # single-call judges are planned and concluded directly: no coroutine for a cached row
        direct = [jg if isinstance(jg, SingleCallJudge) and type(jg).plans_directly() else None for jg in judges]
        while True:
            batch = list(islice(todo, self.batch))
            if not batch:
                return
            pending: list[Pending] = []
            # (j, i, the judge's coroutine or None for a planned call, the Lookup it waits on)
            waiting: list[tuple[int, int, Any, Lookup]] = []
            for j, i in batch:  # the hot loop of a cached re-run (~9k rows in ~0.1 s)
                planner = direct[j]
                if planner is not None:
                    spec = planner.plan(samples[i])
                    if isinstance(spec, Verdict):
                        finish(j, i, spec)
                        continue
                    if spec is not None:
                        waiting.append((j, i, None, lookup_for(base_of, runs[j], spec)))
                        continue  # else a sample that takes several calls: the judge's coroutine
                self._step(judges[j].judge(samples[i], asks[j]), None, j, i, waiting, pending)
            while waiting:  # one bulk lookup per round; a judge asking again goes round again
                found = cache.get_many([item[3].key for item in waiting], slim=True)
                rounds, waiting = waiting, []
                for j, i, coro, lookup in rounds:
                    record = usable(found.get(lookup.key))
                    planner = direct[j]
                    if record is None:
                        if coro is None and planner is not None:  # a planned call: wait as a coroutine does
                            coro = _suspended(planner, samples[i], lookup)
                        pending.append(Pending(j, i, coro, lookup))  # suspended at lookup
                        continue
                    on_hit(record)
                    answer = Answer(record, True, cache)
                    if coro is None and planner is not None:
                        finish(j, i, planner.conclude(samples[i], answer))
                    else:
                        self._step(coro, answer, j, i, waiting, pending)
            pending.sort(key=_order)  # dispatch in (judge, sample) order
            yield pending

    def _step(
        self,
        coro: Any,
        value: Answer | None,
        j: int,
        i: int,
        waiting: list[tuple[int, int, Any, Lookup]],
        pending: list[Pending],
    ) -> None:
        """Run a judge coroutine to its next ``ask`` (queued in ``waiting``) or to its verdict."""
        try:
            step = coro.send(value)
        except StopIteration as done:
            self.finish(j, i, done.value)
            return
        if type(step) is Lookup:
            waiting.append((j, i, coro, step))
            return
        coro.close()  # the judge awaited something real; the online pass runs it afresh
        pending.append(Pending(j, i, None, None))


def _suspended(judge: SingleCallJudge, sample: Sample, lookup: Lookup) -> Any:
    """A coroutine suspended at ``lookup`` that concludes ``judge`` on the answer sent to it:
    what a planned call that missed the cache hands the online pass (as a judge coroutine)."""

    async def conclude() -> Verdict:
        answer: Answer = await lookup
        return judge.conclude(sample, answer)

    coro = conclude()
    coro.send(None)  # runs to ``await lookup``, which yields the lookup itself
    return coro


def _order(p: Pending) -> tuple[int, int]:
    return p.j, p.i
