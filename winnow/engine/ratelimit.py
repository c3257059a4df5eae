"""``--rpm`` / ``--tpm``: token buckets per (model, api_base), shared by every judge of a run.

Why buckets with almost no burst: providers enforce their per-minute limits over windows much
shorter than a minute (OpenAI documents per-second enforcement; our fake server uses a sliding
window), so a bucket that let a whole minute's worth out at once would be refused at once.  The
request bucket therefore *paces* (capacity one request) at ``rpm / 60`` per second, slowed by
``SAFETY`` so requests that leave on time but arrive a little bunched (loop jitter) still fit.

Tokens are estimated before the call (``chars / 4 + max_tokens``, the usual rule of thumb) and
corrected from the reply's usage afterwards; the token bucket may go into debt so the long-run
rate is exact even when the estimate was low.  One request larger than the bucket still goes
once the bucket is full, rather than waiting forever.

Callers acquire a concurrency slot *first* and a rate token second, and send at once: taking
tokens while waiting for a slot would let requests bunch up behind the slots and burst later.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["SAFETY", "RateLimits", "RouteLimit", "TokenBucket", "estimate_tokens"]

SAFETY = 0.95  # pace at 95% of the stated limit


class TokenBucket:
    """``rate`` units per second, at most ``capacity`` saved up; ``take`` waits FIFO."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.capacity = max(1.0, capacity)
        self.level = self.capacity
        self._clock = clock
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    def delay(self, amount: float) -> float:
        """Seconds until ``amount`` may be taken (0: now).  Does not take it."""
        self._refill()
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def try_take(self, amount: float) -> bool:
        if self.delay(amount) > 0:
            return False
        self.level -= amount
        return True

    async def take(self, amount: float = 1.0) -> None:
        if not self._lock.locked() and self.try_take(amount):
            return
        async with self._lock:  # FIFO among waiters: asyncio.Lock wakes in arrival order
            while True:
                wait = self.delay(amount)
                if wait <= 0:
                    self.level -= amount
                    return
                await asyncio.sleep(wait)

    def adjust(self, delta: float) -> None:
        """Give back (``delta > 0``) or charge (``< 0``) units after the fact."""
        self._refill()
        self.level = min(self.capacity, self.level + delta)


def estimate_tokens(messages: list[dict[str, Any]], max_tokens: Any) -> int:
    chars = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            chars += len(content)
    return chars // 4 + (int(max_tokens) if isinstance(max_tokens, int | float) else 256)


class RouteLimit:
    """The request and token buckets of one (model, api_base)."""

    def __init__(self, rpm: float | None, tpm: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.requests = TokenBucket(rpm * SAFETY / 60.0, 1.0, clock) if rpm else None
        self.tokens = TokenBucket(tpm * SAFETY / 60.0, tpm * SAFETY / 60.0, clock) if tpm else None

    async def acquire(self, messages: list[dict[str, Any]], max_tokens: Any) -> int:
        """Wait for a request slot and the estimated tokens; returns the estimate to settle later."""
        if self.requests is not None:
            await self.requests.take(1.0)
        if self.tokens is None:
            return 0
        estimate = estimate_tokens(messages, max_tokens)
        await self.tokens.take(estimate)
        return estimate

    def settle(self, estimate: int, used: int | None) -> None:
        """Correct the token bucket from the reply's usage (``None``: no reply, refund it all)."""
        if self.tokens is not None and estimate:
            self.tokens.adjust(estimate - (used or 0))


class RateLimits:
    """One ``RouteLimit`` per (model, api_base), created on first use; none when no limit is set."""

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        for name, value in (("--rpm", rpm), ("--tpm", tpm)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value:g}")
        self.rpm, self.tpm = rpm, tpm
        self._routes: dict[tuple[str, str | None], RouteLimit] = {}

    @property
    def active(self) -> bool:
        return bool(self.rpm or self.tpm)

    def route(self, model: str, api_base: str | None) -> RouteLimit | None:
        if not self.active:
            return None
        key = (model, api_base.rstrip("/") if api_base else None)
        limit = self._routes.get(key)
        if limit is None:
            limit = self._routes[key] = RouteLimit(self.rpm, self.tpm)
        return limit
