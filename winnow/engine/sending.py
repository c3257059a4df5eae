"""Sending one request with retries, flow control and the in-flight limiter.

Split from the runner so that "how a request is sent" (limiter slot, rate tokens, back-off,
Retry-After) reads in one place and the runner only decides *what* to send.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt

from winnow.engine.config import EngineSettings
from winnow.engine.endpoints import EndpointPool
from winnow.engine.limiter import Limiter
from winnow.engine.ratelimit import RateLimits
from winnow.engine.stats import RunStats
from winnow.engine.transport import ChatRequest, FatalError, TransientError, Unreachable, redact
from winnow.judges.base import RequestFailed
from winnow.types import Reply

__all__ = ["REJECTED_BEFORE_ANSWER", "ROW_REJECTIONS", "UNREACHABLE_AFTER", "Sender"]

# Failed connection attempts to an address that has not answered once this run, after which
# the run stops with "nothing answers at URL" (a few, so one refused connect while a server
# restarts is no verdict; few enough that a run against a closed port ends in seconds).
UNREACHABLE_AFTER = 3
UNREACHABLE_HINT = (
    "start the server first (vLLM: `vllm serve MODEL`; Ollama: `ollama serve`; winnow's own: "
    "`winnow serve-local`), or check --api-base: host, port, and the path (OpenAI-compatible bases end in /v1)"
)
PROVIDER_UNREACHABLE_HINT = (
    "the provider's API cannot be reached from this machine: check the network, a proxy (HTTPS_PROXY), "
    "or the provider's status page"
)

# Statuses that can belong to one row rather than the run: a prompt over the context length
# (OpenAI, vLLM, Anthropic: 400), a body too large (413), a content filter or a value the server
# will not take for this row (422).  Such a row fails alone, without retries; 401/403/404 are
# about the key, the model or the URL and still stop the run.
ROW_REJECTIONS = frozenset({400, 413, 422})
# Rejections from an address that has not answered once this run, after which they are taken for
# what they almost always are then: a run-wide problem (an unknown parameter, a schema the server
# cannot take, a wrong model name) that would fail every row.  Not 1: rejections come back at once
# while answers take seconds, so a few over-long rows near the top can arrive before any answer.
REJECTED_BEFORE_ANSWER = 8


class Sender:
    """Sends requests for one online pass; shares one limiter and one set of rate buckets."""

    def __init__(self, settings: EngineSettings, stats: RunStats) -> None:
        self.settings = settings
        self.stats = stats
        self.limiter = Limiter(settings.concurrency)
        self.rates = RateLimits(settings.rpm, settings.tpm)  # per (model, api_base), all judges
        stats.concurrency_limit = self.limiter.limit
        self._answered: set[str] = set()  # addresses that answered at least once this run
        self._refused: dict[str, int] = {}  # address -> failed connection attempts before that
        self._rejected: dict[str, int] = {}  # address -> rows it rejected before it first answered
        self._pools: dict[tuple[str, ...], EndpointPool] = {}  # several endpoints of one model

    def _pool(self, request: ChatRequest) -> EndpointPool | None:
        if len(request.endpoints) < 2:
            return None
        pool = self._pools.get(request.endpoints)
        if pool is None:
            pool = self._pools[request.endpoints] = EndpointPool(request.endpoints)
        return pool

    def _where(self, request: ChatRequest) -> str:
        """The address failures are counted against (the pool as one); called on every answer,
        so messages redact it (``redact``: a ``user:password@``) only when they are made."""
        if len(request.endpoints) >= 2:
            return "the endpoints " + ", ".join(request.endpoints)
        return request.api_base or f"{request.model}'s provider"

    def _pause(self, request: ChatRequest, attempt: int, exc: BaseException | None) -> float:
        """Seconds before the next attempt: none while another endpoint of the pool is healthy."""
        pool = self._pool(request)
        if pool is not None and request.api_base is not None and pool.other_healthy(request.api_base):
            return 0.0
        return self._backoff(attempt, exc)

    def _connect_failed(self, request: ChatRequest, exc: TransientError) -> None:
        """Count a failed connection; raise ``Unreachable`` once an address that never
        answered has refused ``UNREACHABLE_AFTER`` attempts (see ``Unreachable``).

        In a pool each endpoint is counted alone, and the run stops only when every one of them
        has refused that often and none has answered: a dead endpoint among live ones is benched
        (``EndpointPool``), and its refusals come back before the live ones' first answers.
        """
        where = self._where(request)
        if where in self._answered:
            return  # it answered before: a dropped connection is worth today's retries
        pool = self._pool(request)
        if pool is not None and request.api_base is not None:
            self._refused[request.api_base] = self._refused.get(request.api_base, 0) + 1
            if any(pool.answered.values()) or any(self._refused.get(u, 0) < UNREACHABLE_AFTER for u in pool.urls):
                return
            refused = sum(self._refused.get(u, 0) for u in pool.urls)
        else:
            refused = self._refused[where] = self._refused.get(where, 0) + 1
        if refused >= UNREACHABLE_AFTER:
            self.stats.request_failures += 1
            raise Unreachable(
                f"nothing answers at {redact(where)}: {refused} attempts to connect failed and no request to it has "
                f"succeeded this run (last: {exc})",
                UNREACHABLE_HINT if request.api_base or request.endpoints else PROVIDER_UNREACHABLE_HINT,
            )

    def _row_rejected(self, request: ChatRequest, exc: FatalError) -> BaseException:
        """What a non-retryable error means: this row's failure (``RequestFailed``), or the run's.

        A ``ROW_REJECTIONS`` status fails its row alone, so one over-long prompt does not stop a
        9,000-row run; but ``REJECTED_BEFORE_ANSWER`` of them from an address that has not
        answered once this run stop it, with the server's message and the hint, as before.
        """
        if exc.status not in ROW_REJECTIONS or isinstance(exc, Unreachable):
            return exc
        where = self._where(request)
        if where not in self._answered:
            rejected = self._rejected[where] = self._rejected.get(where, 0) + 1
            if rejected >= REJECTED_BEFORE_ANSWER:
                exc.args = (f"{exc.args[0]} ({rejected} requests rejected and none answered at "
                            f"{redact(where)} this run)",)
                return exc
        self.stats.request_failures += 1
        return RequestFailed(str(exc), reason="rejected by the server")

    async def send(self, transport: Any, request: ChatRequest) -> tuple[Reply, int]:
        """Send with retries: (reply, attempts); a row the server rejects raises ``RequestFailed``
        (see ``_row_rejected``), any other ``FatalError`` goes up and stops the run."""
        try:
            return await self._send(transport, request)
        except FatalError as exc:
            raise self._row_rejected(request, exc) from None

    async def _send(self, transport: Any, request: ChatRequest) -> tuple[Reply, int]:
        """Send with retries: (reply, attempts).  Only ``TransientError`` is retried.

        Up to ``max_retries`` retries after the first attempt, each after a full-jitter
        exponential back-off, never shorter than the server's Retry-After.  The first attempt
        goes straight (building tenacity's retry state cost ~30 us a request, a tenth of the
        bare client's CPU per request); tenacity drives the retries, which are rare.
        """
        route = self.rates.route(request.model, request.api_base)
        try:
            return await self._attempt(transport, request, route), 1
        except TransientError as exc:
            first = exc
        settings = self.settings
        attempts = 1
        if settings.max_retries < 1:
            self.stats.request_failures += 1
            raise RequestFailed(f"no reply after {attempts} attempts: {first}") from None
        await asyncio.sleep(self._pause(request, 1, first))

        def wait(retry_state: Any) -> float:  # tenacity's attempt n is the run's attempt n + 1
            exc = retry_state.outcome.exception() if retry_state.outcome else None
            return self._pause(request, retry_state.attempt_number + 1, exc)

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(settings.max_retries),
                wait=wait,
                retry=retry_if_exception_type(TransientError),
                reraise=True,
            ):
                with attempt:
                    attempts += 1
                    self.stats.retries += 1
                    reply = await self._attempt(transport, request, route)
                    return reply, attempts
        except TransientError as exc:
            self.stats.request_failures += 1
            raise RequestFailed(f"no reply after {attempts} attempts: {exc}") from None
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        settings = self.settings
        expo = min(settings.backoff_max, settings.backoff_initial * 2 ** (attempt - 1))
        backoff = random.uniform(0, expo)  # full jitter
        return float(max(backoff, getattr(exc, "retry_after", None) or 0.0))

    async def _attempt(self, transport: Any, request: ChatRequest, route: Any) -> Reply:
        """One request: a limiter slot, then rate tokens, then send at once (see ratelimit.py)."""
        limiter = self.limiter
        assert limiter is not None
        epoch = await limiter.acquire()
        used: int | None = None
        estimate = 0
        pool = self._pool(request)
        url = None
        try:
            if route is not None:
                estimate = await route.acquire(request.messages, request.params.get("max_tokens"))
            if pool is not None:
                url = request.api_base = pool.pick()
                pool.started(url)
            self.stats.requests += 1
            reply = await transport.complete(request)
            used = reply.usage.total
            if pool is not None and url is not None:
                pool.succeeded(url)
        except TransientError as exc:
            if pool is not None and url is not None:
                pool.failed(url)
            if exc.status == 429:
                limiter.rate_limited(exc.retry_after, epoch)
                self.stats.concurrency_limit = limiter.limit
            elif exc.connect_failed:
                self._connect_failed(request, exc)
            raise
        except BaseException:
            if pool is not None and url is not None:
                pool.inflight[url] -= 1  # cancelled or fatal: not a verdict on the endpoint
            raise
        finally:
            limiter.release()
            if route is not None:
                route.settle(estimate, used)
        self._answered.add(self._where(request))
        limiter.succeeded(epoch)
        self.stats.concurrency_limit = limiter.limit
        return reply
