"""Bounds how many requests are in flight at once.

A plain counter with a FIFO of waiters rather than ``asyncio.Semaphore`` because the limit
must be able to move while the run goes on (adaptive concurrency shrinks it on 429s and
grows it back) and a global pause must hold every request when a server says Retry-After.
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
        self._streak = 0
        self._paused_until = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        while True:
            pause = self._paused_until - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            if self.active < self.limit and not self._waiters:
                self.active += 1
                return
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut in self._waiters:
                    self._waiters.remove(fut)
                raise
            if self.active < self.limit and time.monotonic() >= self._paused_until:
                self.active += 1
                return

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

    def rate_limited(self, retry_after: float | None) -> None:
        """A 429: halve the window (never below 1) and hold everyone for Retry-After."""
        self._streak = 0
        if self.adaptive:
            self.limit = max(1, self.limit // 2)
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
