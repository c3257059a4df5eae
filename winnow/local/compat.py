"""Make llama-cpp-python's server accept the OpenAI structured-output request winnow sends.

winnow (through litellm or the fast transport) asks for structured output the OpenAI way:
``response_format = {"type": "json_schema", "json_schema": {"name": ..., "schema": S}}``.
llama-cpp-python 0.3.x only knows ``{"type": "json_object", "schema": S}`` and answers the
OpenAI form with 422, which the engine rightly treats as fatal.  Rather than teach every
transport a llama.cpp dialect, the server winnow starts rewrites the request on the way in:
the schema is kept, so decoding is still grammar-constrained to it.

Pure ASGI and stdlib only, so it is testable without llama_cpp installed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["JsonSchemaCompat", "rewrite_chat_body", "rewrite_response_format"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def rewrite_response_format(response_format: Any) -> Any:
    """OpenAI ``json_schema`` form -> llama.cpp ``json_object`` + ``schema``; anything else unchanged."""
    if not isinstance(response_format, dict) or response_format.get("type") != "json_schema":
        return response_format
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if isinstance(schema, dict):
        return {"type": "json_object", "schema": schema}
    return {"type": "json_object"}


def rewrite_chat_body(body: bytes) -> bytes:
    """The request body with its ``response_format`` rewritten; the original bytes if nothing changes."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body  # let the server produce its own error for a malformed body
    if not isinstance(data, dict) or "response_format" not in data:
        return body
    new = rewrite_response_format(data["response_format"])
    if new is data["response_format"]:
        return body
    data["response_format"] = new
    return json.dumps(data).encode()


class JsonSchemaCompat:
    """ASGI middleware: rewrite ``response_format`` of POST .../chat/completions bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope.get("type") != "http"
            or scope.get("method") != "POST"
            or not str(scope.get("path", "")).endswith("/chat/completions")
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message.get("type") != "http.request":  # client went away mid-body
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = rewrite_chat_body(b"".join(chunks))
        headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        scope = dict(scope, headers=headers)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
