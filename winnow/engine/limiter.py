"""Bounds how many requests are in flight at once, adaptively.

A plain counter with a FIFO of waiters rather than ``asyncio.Semaphore`` because the limit
must be able to move while the run goes on (adaptive concurrency shrinks it on 429s and
grows it back) and a global pause must hold every request when a server says Retry-After.

Adaptive rule (AIMD, as TCP congestion control): a 429 halves the limit (never below 1) and
pauses the whole run for its Retry-After; ``grow_after`` successes in a row add one back, up
to the configured maximum.  Like TCP, one *congestion event* halves once: the requests that
were already on their way when the limit was cut get their 429s too, and those must not cut
it again (that is what ``acquire``'s epoch is for), or one burst would collapse the limit to 1.

Concurrency alone cannot respect a per-minute limit when replies are fast (even one request
in flight may exceed it), so a cut also *learns a pace*: the requests the server admitted
since the last pause (those sent in the epoch that ended and answered OK), divided by the
time they span plus its Retry-After, is the rate it grants (exactly ``limit / window`` for a
sliding window).  It is computed when the pause ends, once that burst's replies are in.  Requests are then paced at
``PACE_MARGIN`` of that rate, and the pace creeps up ``PACE_GROWTH`` per ``grow_after``
successes so a limit that was raised is found again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from winnow.engine.ratelimit import TokenBucket

PACE_MARGIN = 0.95
PACE_GROWTH = 1.002


class Limiter:
    def __init__(self, limit: int, adaptive: bool = True, grow_after: int = 10) -> None:
        self.maximum = max(1, limit)
        self.limit = self.maximum
        self.active = 0
        self.adaptive = adaptive
        self.grow_after = grow_after
        self.epoch = 0  # bumped at every cut; a request remembers the epoch it was sent in
        self.cuts = 0
        self._streak = 0
        self._paused_until = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self.pace: TokenBucket | None = None  # learned from 429s; None until the first
        self._ok: dict[int, int] = {}  # epoch -> requests sent in it that succeeded
        self._period_start = time.monotonic()
        self._learn: tuple[int, float] | None = None  # (epoch, span) to turn into a pace

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    async def acquire(self) -> int:
        """Wait for a slot (and for any Retry-After pause); returns the epoch to report back.

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
        """Holding a slot, wait for the learned pace (if any)."""
        if self._learn is not None and time.monotonic() >= self._paused_until:
            epoch, span = self._learn
            self._learn = None
            rate = max(1, self._ok.pop(epoch, 0)) / span * PACE_MARGIN
            if self.pace is None or rate < self.pace.rate:
                self.pace = TokenBucket(rate, 1.0)
        if self.pace is not None:
            try:
                await self.pace.take()
            except asyncio.CancelledError:
                self.release()
                raise
        return self.epoch

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

    def rate_limited(self, retry_after: float | None, epoch: int | None = None) -> None:
        """A 429: halve the window once per congestion event and hold everyone for Retry-After.

        ``epoch`` is what ``acquire`` returned for the refused request; a request sent before the
        last cut belongs to the event already answered (``None``: always cut).
        """
        self._streak = 0
        if not self.adaptive or (epoch is not None and epoch != self.epoch):
            if retry_after:
                self._paused_until = max(self._paused_until, time.monotonic() + retry_after)
            return
        self.limit = max(1, self.limit // 2)
        if retry_after:
            now = time.monotonic()
            self._learn = (self.epoch, max(1e-3, now - self._period_start + retry_after))
            self._paused_until = max(self._paused_until, now + retry_after)
            self._period_start = self._paused_until
        self.epoch += 1
        self.cuts += 1

    def succeeded(self, epoch: int | None = None) -> None:
        """A reply came back; ``epoch`` is what ``acquire`` returned for it."""
        if not self.adaptive:
            return
        if epoch is not None and (epoch == self.epoch or (self._learn and epoch == self._learn[0])):
            self._ok[epoch] = self._ok.get(epoch, 0) + 1
        self._streak += 1
        if self._streak >= self.grow_after:
            self._streak = 0
            if self.pace is not None:
                self.pace.rate *= PACE_GROWTH
            if self.limit < self.maximum:
                self.limit += 1
                self._wake()
