"""Anthropic Message Batches, behind the same interface as ``OpenAIBatches``.

Why an adapter of winnow's own: litellm cannot create Anthropic batches (litellm#17265), and its
retrieve maps ``ended`` to ``completed`` and hides the canceled / expired counts, which decide
what must be sent again.  The driver writes every chunk as OpenAI batch lines; this adapter turns
them into Message Batch requests (``system`` apart, ``max_tokens`` required), and turns results
back into OpenAI result lines, so ingestion is one code path.

Anthropic batches carry no metadata.  A resume finds a batch whose creation the journal did not
record by its request count among the batches created since the journal marked the chunk
"creating" (``find``); two such batches would be ambiguous and are reported, never guessed.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from winnow.batch.openai_api import BatchAPIError, _loopback, http_open

__all__ = ["AnthropicBatches"]

DEFAULT_BASE = "https://api.anthropic.com/v1"
VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024


class AnthropicBatches:
    provider = "anthropic"
    endpoint = "/v1/messages"
    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024
    needs_upload = False

    def __init__(self, api_base: str | None = None, api_key: str | None = None) -> None:
        self.base = (api_base or os.environ.get("ANTHROPIC_API_BASE") or DEFAULT_BASE).rstrip("/")
        self.key = api_key or os.environ.get("ANTHROPIC_API_KEY") or "no-key"
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}) if _loopback(self.base)
                                                   else urllib.request.ProxyHandler())

    def _open(self, method: str, url: str, payload: dict[str, Any] | None = None) -> Any:
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"x-api-key": self.key, "anthropic-version": VERSION}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return http_open(self._opener, method, url, body, headers, self.key)

    def _json(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        with self._open(method, f"{self.base}{path}", payload) as response:
            return json.loads(response.read())

    # ------------------------------------------------------------------ the driver's interface
    def upload(self, path: Path) -> str:
        return str(path)  # Message Batches take the requests inline: nothing to upload

    def create(self, input_file_id: str, endpoint: str, metadata: dict[str, str]) -> dict[str, Any]:
        requests = [_to_anthropic(json.loads(line)) for line in Path(input_file_id).read_text().splitlines()
                    if line.strip()]
        return _status(self._json("POST", "/messages/batches", {"requests": requests}))

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        return _status(self._json("GET", f"/messages/batches/{batch_id}"))

    def cancel(self, batch_id: str) -> dict[str, Any]:
        return _status(self._json("POST", f"/messages/batches/{batch_id}/cancel"))

    def batches(self) -> Iterator[dict[str, Any]]:
        after = None
        while True:
            page = self._json("GET", "/messages/batches?limit=100" + (f"&after_id={after}" if after else ""))
            data = page.get("data") or []
            yield from (_status(b) for b in data)
            if not page.get("has_more") or not data:
                return
            after = page.get("last_id") or data[-1]["id"]

    def find(self, job: str, chunk: str, requests: int, since: float | None) -> dict[str, Any] | None:
        """The batch created for a chunk before a crash: the one created since ``since`` with
        this many requests.  Two candidates cannot be told apart: an error, never a guess."""
        if since is None:
            return None
        found = [b for b in self.batches() if b.get("created_ts", 0) >= since - 5 and b.get("total") == requests]
        if len(found) > 1:
            raise BatchAPIError(f"{len(found)} Anthropic batches of {requests} requests were created since chunk "
                                f"{chunk} of {job} was journalled: cancel the extra one by hand")
        return found[0] if found else None

    def lines(self, file_id: str) -> Iterator[bytes]:
        """Result lines as OpenAI batch output lines (the driver's one ingestion path)."""
        with self._open("GET", file_id) as response:
            for raw in response:
                if not raw.strip():
                    continue
                item = json.loads(raw)
                converted = _from_anthropic(item)
                if converted is not None:
                    yield json.dumps(converted).encode()


def _to_anthropic(line: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI batch line as a Message Batch request."""
    body = line["body"]
    model = str(body["model"]).removeprefix("anthropic/")
    system = "\n\n".join(str(m.get("content") or "") for m in body["messages"] if m.get("role") == "system")
    params: dict[str, Any] = {
        "model": model,
        "max_tokens": int(body.get("max_tokens") or DEFAULT_MAX_TOKENS),
        "messages": [{"role": m["role"], "content": m["content"]} for m in body["messages"]
                     if m.get("role") != "system"],
    }
    if system:
        params["system"] = system
    for key in ("temperature", "top_p", "stop_sequences"):
        if body.get(key) is not None:
            params[key] = body[key]
    if body.get("stop") is not None:
        params["stop_sequences"] = body["stop"] if isinstance(body["stop"], list) else [body["stop"]]
    return {"custom_id": line["custom_id"], "params": params}


def _status(batch: dict[str, Any]) -> dict[str, Any]:
    """A Message Batch in the OpenAI batch shape the driver reads, with every count kept."""
    counts = dict(batch.get("request_counts") or {})
    total = sum(int(v or 0) for v in counts.values())
    state = str(batch.get("processing_status"))
    if state == "ended":
        if counts.get("canceled"):
            state = "cancelled"
        elif counts.get("expired"):
            state = "expired"
        else:
            state = "completed"
    elif state == "canceling":
        state = "cancelling"
    from datetime import datetime

    created = batch.get("created_at")
    try:
        created_ts = datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp()
    except ValueError:
        created_ts = 0.0
    return {"id": batch["id"], "status": state, "request_counts": counts, "total": total, "created_ts": created_ts,
            "output_file_id": batch.get("results_url"), "error_file_id": None}


def _from_anthropic(item: dict[str, Any]) -> dict[str, Any] | None:
    """A result line as an OpenAI result line; expired and canceled lines are no answer (None)."""
    result = item.get("result") or {}
    kind = result.get("type")
    custom_id = item.get("custom_id")
    if kind == "succeeded":
        message = result.get("message") or {}
        text = "".join(b.get("text", "") for b in message.get("content") or [] if b.get("type") == "text")
        usage = message.get("usage") or {}
        body = {"id": message.get("id"), "object": "chat.completion", "model": message.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                             "finish_reason": message.get("stop_reason")}],
                "usage": {"prompt_tokens": usage.get("input_tokens", 0),
                          "completion_tokens": usage.get("output_tokens", 0)}}
        return {"custom_id": custom_id, "response": {"status_code": 200, "body": body}, "error": None}
    if kind == "errored":
        error = (result.get("error") or {}).get("error") or result.get("error") or {}
        return {"custom_id": custom_id, "response": None,
                "error": {"code": error.get("type", "errored"), "message": error.get("message", "")}}
    return None
