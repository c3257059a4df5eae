"""The transport interface: one chat completion in, a ``Reply`` or a classified error out.

Every transport maps its failures onto three exceptions so the retry policy is written
once: ``TransientError`` (429, 5xx, timeouts, dropped connections: retry with back-off,
honouring Retry-After), ``FatalError`` (400/401/403/404: fail fast, the user must fix
something) and, from the caller's side, a reply that parses badly (a judge matter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from winnow.types import Reply


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    params: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    schema_name: str = "judgment"
    top_logprobs: int | None = None
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 120.0
    endpoints: tuple[str, ...] = ()  # several servers of one model: the sender picks ``api_base``


class TransportError(Exception):
    """Base of classified transport failures; messages never contain the API key."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class TransientError(TransportError):
    """Worth retrying: rate limited, server error, timeout, connection trouble.

    ``connect_failed``: no connection could be made at all (refused, no such host), as opposed
    to one that was made and then dropped; the sender gives up early on a server that has
    never answered (see ``Unreachable``).
    """

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None, connect_failed: bool = False
    ) -> None:
        super().__init__(message, status, retry_after)
        self.connect_failed = connect_failed


class FatalError(TransportError):
    """Retrying cannot help: bad request, bad key, unknown model or route."""


class Unreachable(FatalError):
    """Nothing answers at the server's address: every attempt so far failed to connect and no
    request to it has succeeded this run.  Retrying every row to exhaustion would take minutes
    and prove nothing more, so the run stops at once (``unreachable``: no grace period)."""

    unreachable = True

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class Transport(Protocol):
    name: str

    async def complete(self, request: ChatRequest) -> Reply: ...

    async def aclose(self) -> None: ...


_KEYLIKE = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+\S+|(?i:api[_-]?key)['\"]?\s*[:=]\s*['\"]?[^\s'\",}]+)")


_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]*@")  # http://user:password@host/...


def redact(text: str, secret: str | None = None) -> str:
    """Remove an API key (and anything that looks like one, or a URL's user:password) from an
    error message."""
    if secret:
        text = text.replace(secret, "***")
    return _URL_USERINFO.sub("***@", _KEYLIKE.sub("***", text))


def fatal_hint(status: int | None) -> str:
    return {
        400: "the server rejected the request: check --model and the judge's options",
        401: "authentication failed: check the API key (--api-key or the provider's environment variable)",
        403: "access denied: the key lacks permission for this model",
        404: "not found: check --model and --api-base (an OpenAI-compatible base usually ends in /v1)",
    }.get(status or 0, "the request cannot succeed as sent")


def parse_retry_after(value: Any) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None
