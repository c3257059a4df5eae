"""Several endpoints serving one model (``--api-base URL1 --api-base URL2``): spread by load,
drop one that stops answering, take it back when it answers again.

Why: a team serving one judge model with a vLLM server per GPU node wants one run over all of
them.  Each request goes to the healthy endpoint with the fewest requests in flight; a failure
(refused, reset, timeout, 5xx) benches that endpoint for a back-off that doubles per failure
(0.5 s up to 30 s), after which the next request probes it: an answer resets it.  While another
endpoint is healthy, a failed attempt is retried there at once instead of after the back-off.
The cache identity is the model, not the endpoint (``ModelConfig.key_api_base``), so any set of
endpoints serving it shares the judgments.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

__all__ = ["POOL_IDENTITY", "EndpointPool"]

POOL_IDENTITY = "endpoints"  # what the cache key records instead of one URL
BENCH_FIRST = 0.5
BENCH_MAX = 30.0


class EndpointPool:
    """The endpoints of one model; not thread-safe (one event loop drives it)."""

    def __init__(self, urls: Sequence[str], clock: object = time.monotonic) -> None:
        if not urls:
            raise ValueError("an endpoint pool needs at least one URL")
        self.urls = [u.rstrip("/") for u in urls]
        self.inflight = dict.fromkeys(self.urls, 0)
        self.failures = dict.fromkeys(self.urls, 0)
        self.benched_until = dict.fromkeys(self.urls, 0.0)
        self.answered = dict.fromkeys(self.urls, 0)
        self._clock = clock

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def healthy(self) -> list[str]:
        now = self._now()
        return [u for u in self.urls if self.benched_until[u] <= now]

    def pick(self) -> str:
        """The healthy endpoint with the fewest requests in flight; with none healthy, the one
        whose bench ends first (a probe)."""
        healthy = self.healthy()
        if not healthy:
            return min(self.urls, key=lambda u: self.benched_until[u])
        return min(healthy, key=lambda u: (self.inflight[u], self.urls.index(u)))

    def started(self, url: str) -> None:
        self.inflight[url] += 1

    def succeeded(self, url: str) -> None:
        self.inflight[url] -= 1
        self.answered[url] += 1
        self.failures[url] = 0
        self.benched_until[url] = 0.0

    def failed(self, url: str) -> None:
        self.inflight[url] -= 1
        self.failures[url] += 1
        self.benched_until[url] = self._now() + min(BENCH_MAX, BENCH_FIRST * 2 ** (self.failures[url] - 1))

    def other_healthy(self, url: str) -> bool:
        return any(u != url for u in self.healthy())
