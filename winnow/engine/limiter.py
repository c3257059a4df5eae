"""Bounds how many requests are in flight at once, adaptively.

A plain counter with a FIFO of waiters rather than ``asyncio.Semaphore`` because the limit
must be able to move while the run goes on (adaptive concurrency shrinks it on 429s and
grows it back) and a global pause must hold every request when a server says Retry-After.

Adaptive rule (AIMD, as TCP congestion control): a 429 halves the limit (never below 1) and
pauses the whole run for its Retry-After; ``grow_after`` successes in a row add one back, up
to the configured maximum.  Like TCP, one *congestion event* halves once: the requests that
were already on their way when the limit was cut get their 429s too, and those must not cut
it again (that is what ``acquire``'s epoch is for), or one burst would collapse the limit to 1.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque


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

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - time.monotonic())

    async def acquire(self) -> int:
        """Wait for a slot (and for any Retry-After pause); returns the epoch to report back."""
        while True:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            if self.active < self.limit and not self._waiters:
                self.active += 1
                return self.epoch
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut in self._waiters:
                    self._waiters.remove(fut)
                elif fut.done() and not fut.cancelled():
                    self._wake()  # we were handed a slot we will not use: pass it on
                raise
            if self.active < self.limit and time.monotonic() >= self._paused_until:
                self.active += 1
                return self.epoch

    def release(self) -> None:
        self.active -= 1
        self._wake()

    def _wake(self) -> None:
        free = self.limit - self.active
        while free > 0 and self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                free -= 1

    def rate_limited(self, retry_after: float | None, epoch: int | None = None) -> None:
        """A 429: halve the window once per congestion event and hold everyone for Retry-After.

        ``epoch`` is what ``acquire`` returned for the refused request; a request sent before the
        last cut belongs to the event already answered (``None``: always cut).
        """
        self._streak = 0
        if self.adaptive and (epoch is None or epoch == self.epoch):
            self.limit = max(1, self.limit // 2)
            self.epoch += 1
            self.cuts += 1
        if retry_after:
            self._paused_until = max(self._paused_until, time.monotonic() + retry_after)

    def succeeded(self) -> None:
        if not self.adaptive or self.limit >= self.maximum:
            return
        self._streak += 1
        if self._streak >= self.grow_after:
            self._streak = 0
            self.limit += 1
            self._wake()
