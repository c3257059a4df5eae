"""The fast transport: OpenAI-compatible ``/chat/completions`` over one shared aiohttp session.

Why it exists: on a 2-core machine litellm's per-request CPU (~6-7 ms: pydantic response
objects, provider dispatch, logging hooks) caps a judging run at ~150 req/s, while a bare
aiohttp client reaches ~1,000 req/s against the same server.  This module is that bare
client with just enough around it to be a drop-in for ``LitellmTransport``:

- the same request body (``litellm_transport.build_kwargs``; the wire model name loses its
  provider prefix exactly as litellm strips it: ``openai/x`` -> ``x``, ``hosted_vllm/x`` -> ``x``);
- the same ``Reply`` (text, usage, finish_reason, logprobs with top alternatives, model);
- the same error classes (429 + Retry-After, 5xx, timeouts, drops, malformed bodies ->
  ``TransientError``; 400/401/403/404/413/422 -> ``FatalError``), with the key redacted.

One ``ClientSession`` per transport, created lazily inside the running loop, connection pool
sized to the run's concurrency; bodies are encoded and decoded with orjson.

Prices: litellm's cost map is read straight from the JSON file litellm ships (the file litellm
itself uses, since winnow sets ``LITELLM_LOCAL_MODEL_COST_MAP``), so a run on the fast
transport never pays the ~5 s litellm import, whatever the model (``cost_of`` below).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import aiohttp
import orjson

from winnow.engine.litellm_transport import build_kwargs
from winnow.engine.transport import ChatRequest, FatalError, TransientError, parse_retry_after, redact
from winnow.types import Reply, TokenLogprob, Usage

__all__ = ["FastTransport", "cost_of", "resolve_endpoint", "token_prices", "wire_model"]

OPENAI_DEFAULT_BASE = "https://api.openai.com/v1"
FATAL_STATUSES = frozenset((400, 401, 403, 404, 413, 422))
_PREFIXES = ("openai/", "hosted_vllm/")


def wire_model(model: str) -> str:
    """The model name the server sees: the provider prefix stripped, as litellm does."""
    for prefix in _PREFIXES:
        if model.startswith(prefix):
            return model[len(prefix):]
    return model


def resolve_endpoint(model: str, api_base: str | None, api_key: str | None) -> tuple[str, str | None]:
    """(chat completions URL, key) with litellm's environment fallbacks for the route."""
    if model.startswith("hosted_vllm/"):
        base = api_base or os.environ.get("HOSTED_VLLM_API_BASE")
        key = api_key or os.environ.get("HOSTED_VLLM_API_KEY")
        if not base:
            raise FatalError("hosted_vllm/ needs --api-base (or HOSTED_VLLM_API_BASE)", 400)
    else:
        base = (api_base or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE")
                or OPENAI_DEFAULT_BASE)
        key = api_key or os.environ.get("OPENAI_API_KEY")
    return base.rstrip("/") + "/chat/completions", key


class FastTransport:
    """Chat completions for OpenAI-compatible servers; see the module docstring."""

    name = "fast"

    def __init__(self, concurrency: int = 32) -> None:
        self.concurrency = max(1, concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._routes: dict[tuple[str, str | None, str | None], tuple[str, dict[str, str], str | None]] = {}

    def _get_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=self.concurrency,
                                             ttl_dns_cache=300, keepalive_timeout=30)
            session = self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=lambda o: orjson.dumps(o).decode(),
                skip_auto_headers=("User-Agent",), auto_decompress=True,
            )
        return session

    def _route(self, request: ChatRequest) -> tuple[str, dict[str, str], str | None]:
        """URL, headers and key for a (model, api_base, api_key); computed once per route."""
        ident = (request.model, request.api_base, request.api_key)
        route = self._routes.get(ident)
        if route is None:
            url, key = resolve_endpoint(request.model, request.api_base, request.api_key)
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if key:
                headers["Authorization"] = f"Bearer {key}"
            route = self._routes[ident] = (url, headers, key)
        return route

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(seconds)
        if timeout is None:
            timeout = self._timeouts[seconds] = aiohttp.ClientTimeout(total=seconds)
        return timeout

    async def complete(self, request: ChatRequest) -> Reply:
        url, headers, key = self._route(request)
        body = build_kwargs(request)
        body["model"] = wire_model(request.model)
        payload = orjson.dumps(body)
        try:
            async with self._get_session().post(
                url, data=payload, headers=headers, timeout=self._timeout(request.timeout)
            ) as response:
                status = response.status
                raw = await response.read()
                retry_after = response.headers.get("retry-after") if status == 429 else None
        except TimeoutError:
            raise TransientError(f"Timeout: no reply from {url} within {request.timeout:g}s") from None
        except aiohttp.ClientConnectorError as exc:  # no connection at all: refused, no such host
            message = redact(f"APIConnectionError: cannot connect to {url}: {exc}", key)[:500]
            raise TransientError(message, connect_failed=True) from None
        except aiohttp.ClientError as exc:  # reset, dropped mid-body, bad HTTP
            raise TransientError(redact(f"APIConnectionError: {type(exc).__name__}: {exc}", key)[:500]) from None
        if status != 200:
            raise _status_error(status, raw, retry_after, key)
        return parse_reply(raw, key)

    @staticmethod
    def cost_of(model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """Dollars for a judgment, from litellm's price table without importing litellm."""
        return cost_of(model, prompt_tokens, completion_tokens)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def _status_error(status: int, raw: bytes, retry_after: str | None, key: str | None) -> Exception:
    try:
        data = orjson.loads(raw)
        err = data.get("error", data) if isinstance(data, dict) else data
        detail = err.get("message", err) if isinstance(err, dict) else err
    except orjson.JSONDecodeError:
        detail = raw[:300].decode("utf-8", "replace")
    message = redact(f"HTTP {status}: {detail}", key)[:500]
    if status in FATAL_STATUSES:
        return FatalError(message, status)
    return TransientError(message, status, parse_retry_after(retry_after))


def parse_reply(raw: bytes, key: str | None = None) -> Reply:
    """A ``Reply`` from a chat.completion body; a body that is not one is a TransientError."""
    try:
        data = orjson.loads(raw)
        choice = data["choices"][0]
        message = choice.get("message") or {}
        usage = data.get("usage") or {}
        return Reply(
            text=message.get("content") or "",
            usage=Usage(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                        completion_tokens=int(usage.get("completion_tokens") or 0)),
            finish_reason=choice.get("finish_reason"),
            logprobs=_logprobs(choice.get("logprobs")),
            model=data.get("model"),
        )
    except (orjson.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        snippet = raw[:200].decode("utf-8", "replace")
        raise TransientError(redact(f"malformed reply ({type(exc).__name__}): {snippet}", key)[:500]) from None


def _logprobs(lp: Any) -> list[TokenLogprob] | None:
    """First 16 tokens with their top alternatives, as ``litellm_transport._logprobs`` reads them."""
    if not lp:
        return None
    content = lp.get("content")
    if not content:
        return None
    return [
        TokenLogprob(token=str(item["token"]), logprob=float(item["logprob"]),
                     top={str(a["token"]): float(a["logprob"]) for a in item.get("top_logprobs") or ()})
        for item in content[:16]
    ]


@lru_cache(maxsize=1)
def _cost_map() -> dict[str, Any]:
    """litellm's bundled price table, read without importing litellm (~0.1 s instead of ~5 s)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("litellm")
    if spec is None or spec.origin is None:
        return {}
    path = Path(spec.origin).parent / "model_prices_and_context_window_backup.json"
    try:
        table = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return table if isinstance(table, dict) else {}


@lru_cache(maxsize=256)
def token_prices(model: str) -> tuple[float, float]:
    """(input, output) dollars per token, looked up as ``winnow.engine.pricing`` does."""
    table = _cost_map()
    for name in (model, model.split("/", 1)[-1]):
        entry = table.get(name)
        if isinstance(entry, dict):
            return float(entry.get("input_cost_per_token") or 0.0), float(entry.get("output_cost_per_token") or 0.0)
    return 0.0, 0.0


def cost_of(model: str, prompt_tokens: int, completion_tokens: int) -> float:
    p_in, p_out = token_prices(model)
    return prompt_tokens * p_in + completion_tokens * p_out
