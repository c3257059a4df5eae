"""Bounds how many requests are in flight at once, adaptively.

A plain counter with a FIFO of waiters rather than ``asyncio.Semaphore`` because the limit
must be able to move while the run goes on (adaptive concurrency shrinks it on 429s and
grows it back) and a global pause must hold every request when a server says Retry-After.

Every 429 pauses the whole run for its Retry-After, not only the request that got it.

Adaptive rule (AIMD, as TCP congestion control): a *congestion event* halves the limit (never
below 1); ``grow_after`` successes add one back, up to the configured maximum.  Like TCP, one
event halves once: requests already on their way when the limit was cut get their 429s too,
and those must not cut it again.  ``acquire`` hands out a *ticket* (the request's number in
send order) that the caller reports back, so the limiter knows which cut a reply belongs to.

Not every 429 is a congestion event, because servers also refuse at random (load shedding,
a shared quota, our fault-injecting test server).  Random refusals do not depend on how hard
we push, and AIMD answers them by collapsing: with 10% random 429s the limit sat at 1, a pace
learned from every 429 fell to ~1 request/s, and 3,000 rows took minutes.  A rate limit has a
shape random refusals lack: the server says yes to everything until the limit is reached, then
no.  So a 429 (on a request sent since the last cut) is an event only if

- none of the ``run_min`` requests sent just before it was refused (in send order, so replies
  coming back out of order cannot fake a run): we crossed a limit.  By chance at 10% random
  refusals that happens to one 429 in ~175; at 2%, to one in 3, and the pace outgrows it; or
- refusals are dense since the last cut: a third of the replies to requests sent since then,
  once there are ``DENSE_N`` more of them than the window (429s come back faster than answers,
  so the first replies of a burst are its refusals).  A limit so low that no long run fits in
  it, or a cut that was not enough.

Other 429s only pause, except the first of the run: with no history to tell noise from a
limit it is taken as a limit, but only for the window (cheap to regrow), not for the pace.
Concurrency alone cannot respect a per-minute limit when replies are
fast (even one request in flight may exceed it), so an event also *learns a pace*: the
requests the server admitted since the last cut, divided by the time they span plus the
Retry-After, is the rate it grants (exactly ``limit / window`` for a sliding window).  It is
computed when the pause ends, once that burst's replies are in, and replaces the old pace
(falling at most by half per event, like the window).  Requests are paced at ``PACE_MARGIN``
of it, and the pace grows ``PACE_GROWTH`` per ``grow_after`` successes: a pace learned from
bad luck is soon outgrown, and a limit that was raised is found again; refinding a real one
costs about one refusal (0.66% of 906 requests against 90 per 3 s at ``-c 16``).

Known weak spot: a limit smaller than ``run_min`` requests per window never shows a long run,
so it waits for the dense rule and is held mostly by the Retry-After pauses meanwhile (20 per
3 s at ``-c 16``: 23% of requests refused, every row ok, on time).
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_right
from collections import deque

from winnow.engine.ratelimit import TokenBucket

__all__ = ["DENSE_N", "PACE_GROWTH", "PACE_MARGIN", "RUN_MIN", "Limiter"]

PACE_MARGIN = 0.95
PACE_GROWTH = 1.01  # per grow_after successes: one PACE_MARGIN back in ~50 successes
RUN_MIN = 50
DENSE_N = 20


class Limiter:
    def __init__(self, limit: int, adaptive: bool = True, grow_after: int = 10, run_min: int = RUN_MIN) -> None:
        self.maximum = max(1, limit)
        self.limit = self.maximum
        self.active = 0
        self.adaptive = adaptive
        self.grow_after = grow_after
        self.run_min = run_min
        self.cuts = 0
        self.refusals = 0  # every 429 reported
        self._tickets = 0  # requests let through so far; the next ticket
        self._cut_at: list[int] = []  # first ticket after each cut: epoch of a ticket = cuts before it
        self._last_refused = -1  # highest ticket refused so far
        self._streak = 0  # successes since the last growth or cut
        self._since_cut = [0, 0]  # [successes, refusals] of requests sent since the last cut
        self._paused_until = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self.pace: TokenBucket | None = None  # learned from congestion events; None until the first
        self._ok: dict[int, int] = {}  # epoch -> requests sent in it that succeeded
        self._period_start = time.monotonic()
        self._learn: tuple[int, float] | None = None  # (epoch, span) to turn into a pace

    @property
    def epoch(self) -> int:
        """How many cuts so far; a request belongs to the epoch it was sent in."""
        return len(self._cut_at)

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    def _epoch_of(self, ticket: int) -> int:
        return bisect_right(self._cut_at, ticket)

    async def acquire(self) -> int:
        """Wait for a slot (and for any Retry-After pause and the pace); returns the ticket to report back.

        Slots are handed over by ``_wake`` (it counts the slot as taken for the waiter), so a
        waiter woken once never has to queue again and nobody can be left waiting with no
        request in flight to wake it.
        """
        if self.active < self.limit and not self._waiters and time.monotonic() >= self._paused_until:
            self.active += 1
            return await self._paced()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        self._wake()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # a slot was handed to us that we will not use: pass it on
            elif fut in self._waiters:
                self._waiters.remove(fut)
            raise
        return await self._paced()

    async def _paced(self) -> int:
        """Holding a slot, wait for the learned pace (if any); then number the request."""
        if self._learn is not None and time.monotonic() >= self._paused_until:
            epoch, span = self._learn
            self._learn = None
            rate = max(1, self._ok.pop(epoch, 0)) / span * PACE_MARGIN
            if self.pace is None:
                self.pace = TokenBucket(rate, 1.0)
            else:  # replace, not min: a pace learned from bad luck must not stick
                self.pace.rate = max(rate, self.pace.rate / 2)
        if self.pace is not None:
            try:
                await self.pace.take()
            except asyncio.CancelledError:
                self.release()
                raise
        self._tickets += 1
        return self._tickets - 1

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        pause = self._paused_until - time.monotonic()
        if pause > 0:
            if self._waiters and self._timer is None:
                self._timer = asyncio.get_running_loop().call_later(pause, self._end_pause)
            return
        while self.active < self.limit and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                self.active += 1
                fut.set_result(None)

    def _end_pause(self) -> None:
        self._timer = None
        self._wake()

    def _is_event(self, ticket: int) -> bool:
        """Is a 429 on this request a congestion event (see the module docstring)?"""
        ok, refused = self._since_cut
        dense = 3 * refused >= ok + refused >= DENSE_N + self.limit
        return ticket - self._last_refused > self.run_min or dense

    def rate_limited(self, retry_after: float | None, ticket: int | None = None) -> None:
        """A 429: hold everyone for Retry-After; on a congestion event, halve the window and learn a pace.

        ``ticket`` is what ``acquire`` returned for the refused request (``None``: always an event,
        for callers that do not track tickets).
        """
        first = self.refusals == 0
        self.refusals += 1
        now = time.monotonic()
        if retry_after:
            self._paused_until = max(self._paused_until, now + retry_after)
        if not self.adaptive:
            return
        current = ticket is None or self._epoch_of(ticket) == self.epoch
        if current:
            self._since_cut[1] += 1
        event = ticket is None or (current and self._is_event(ticket))
        if ticket is not None:
            self._last_refused = max(self._last_refused, ticket)
        if not (event or first):
            return
        if event and retry_after:
            self._learn = (self.epoch, max(1e-3, now - self._period_start + retry_after))
        self.limit = max(1, self.limit // 2)
        self._period_start = max(now, self._paused_until)
        self._streak = 0
        self._since_cut = [0, 0]
        self._cut_at.append(self._tickets)
        self.cuts += 1

    def succeeded(self, ticket: int | None = None) -> None:
        """A reply came back; ``ticket`` is what ``acquire`` returned for it."""
        if not self.adaptive:
            return
        if ticket is not None:
            epoch = self._epoch_of(ticket)
            if epoch == self.epoch:
                self._since_cut[0] += 1
            if epoch == self.epoch or (self._learn and epoch == self._learn[0]):
                self._ok[epoch] = self._ok.get(epoch, 0) + 1
        self._streak += 1
        if self._streak >= self.grow_after:
            self._streak = 0
            if self.pace is not None:
                self.pace.rate *= PACE_GROWTH
            if self.limit < self.maximum:
                self.limit += 1
                self._wake()
