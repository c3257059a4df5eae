"""The litellm transport: any provider litellm speaks.  The only module importing litellm.

litellm stalls at import trying to download a price map unless
``LITELLM_LOCAL_MODEL_COST_MAP`` is set, so we set it (unless the user did) right before
the first import.  The import costs seconds, so it happens on first use, never at CLI
start-up (architecture.md rule 4).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

from winnow.engine.transport import ChatRequest, FatalError, TransientError, parse_retry_after, redact
from winnow.types import Reply, TokenLogprob, Usage


@lru_cache(maxsize=1)
def import_litellm() -> Any:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    litellm.drop_params = True  # providers without logprobs/seed must not reject the call
    return litellm


def build_kwargs(request: ChatRequest) -> dict[str, Any]:
    """The request body both transports send (the fast transport mirrors this)."""
    kwargs: dict[str, Any] = {"model": request.model, "messages": request.messages}
    kwargs.update({k: v for k, v in request.params.items() if v is not None})
    if request.schema is not None:
        kwargs["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": request.schema_name, "schema": request.schema, "strict": False},
        }
    if request.top_logprobs:
        kwargs["logprobs"] = True
        kwargs["top_logprobs"] = request.top_logprobs
    return kwargs


def _logprobs(choice: Any) -> list[TokenLogprob] | None:
    lp = getattr(choice, "logprobs", None)
    if lp is None and isinstance(choice, dict):
        lp = choice.get("logprobs")
    if lp is None:
        return None
    content = lp.get("content") if isinstance(lp, dict) else getattr(lp, "content", None)
    if not content:
        return None
    out = []
    for item in content[:16]:
        get = item.get if isinstance(item, dict) else lambda k, _i=item: getattr(_i, k, None)
        tops = get("top_logprobs") or []
        top = {}
        for alt in tops:
            aget = alt.get if isinstance(alt, dict) else lambda k, _a=alt: getattr(_a, k, None)
            top[str(aget("token"))] = float(aget("logprob") or 0.0)
        out.append(TokenLogprob(token=str(get("token")), logprob=float(get("logprob") or 0.0), top=top))
    return out


class LitellmTransport:
    name = "litellm"

    def __init__(self) -> None:
        self._litellm = import_litellm()

    async def complete(self, request: ChatRequest) -> Reply:
        litellm = self._litellm
        kwargs = build_kwargs(request)
        if request.api_base:
            kwargs["api_base"] = request.api_base
        if request.api_key:
            kwargs["api_key"] = request.api_key
        elif request.api_base and not _provider_key_set(request.model):
            # A self-hosted OpenAI-compatible server (vLLM, llama.cpp) usually needs no key,
            # but the OpenAI client refuses to send a request without one.
            kwargs["api_key"] = "no-key"
        try:
            response = await litellm.acompletion(
                **kwargs, timeout=request.timeout, num_retries=0, max_retries=0
            )
        except Exception as exc:  # classified below; litellm wraps every provider error
            raise classify(exc, request.api_key) from None
        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        return Reply(
            text=choice.message.content or "",
            usage=Usage(
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            ),
            finish_reason=getattr(choice, "finish_reason", None),
            logprobs=_logprobs(choice),
            model=getattr(response, "model", None),
        )

    async def aclose(self) -> None:
        return None


def _provider_key_set(model: str) -> bool:
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    return bool(os.environ.get(f"{provider.upper()}_API_KEY"))


def classify(exc: Exception, api_key: str | None) -> Exception:
    """Map a litellm/openai/httpx exception onto TransientError or FatalError."""
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    retry_after = None
    headers = getattr(response, "headers", None)
    if headers is not None:
        try:
            retry_after = parse_retry_after(headers.get("retry-after"))
        except Exception:
            retry_after = None
    message = redact(f"{type(exc).__name__}: {exc}", api_key)[:500]
    name = type(exc).__name__
    if "Missing credentials" in message or "api_key client option must be set" in message:
        return FatalError(message, 401)
    if status in (400, 401, 403, 404, 413, 422) or name in (
        "AuthenticationError", "NotFoundError", "BadRequestError", "PermissionDeniedError",
        "UnprocessableEntityError", "ContextWindowExceededError", "ContentPolicyViolationError",
    ):
        if name == "BadRequestError" and status is None:
            # litellm raises BadRequestError for provider-side garbage replies too
            return TransientError(message, status, retry_after)
        if status is None and name in ("ContextWindowExceededError", "ContentPolicyViolationError"):
            status = 400  # this row's prompt, not the run's settings (see sending.ROW_REJECTIONS)
        return FatalError(message, status)
    return TransientError(message, status, retry_after, connect_failed=_connect_failed(exc))


_CONNECT_ERRORS = {"ConnectError", "ConnectionRefusedError", "ClientConnectorError", "ClientConnectorDNSError"}
_CONNECT_TEXT = ("Connection refused", "Cannot connect to host", "All connection attempts failed",
                 "Name or service not known", "nodename nor servname")


def _connect_failed(exc: BaseException) -> bool:
    """Whether no connection was made at all.  litellm 1.110 reports a refused connection as an
    InternalServerError with status 500 (!), wrapping openai's APIConnectionError, httpx's
    ConnectError and aiohttp's ClientConnectorError: the chain of causes is read, not the status."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            break
        if type(seen).__name__ in _CONNECT_ERRORS:
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    return any(part in text for part in _CONNECT_TEXT)
