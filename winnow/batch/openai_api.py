"""The OpenAI Files and Batches API, for OpenAI and any server that serves ``/v1/files`` and
``/v1/batches`` (vLLM's, a gateway's), spoken directly over HTTP.

Why not litellm's files/batches functions: results must be ingested line by line as they are
downloaded (a crash while ingesting loses nothing), and litellm returns a file's content whole
(and, in 1.110, downloads a finished batch's whole output on every retrieve for logging unless
told not to).  The API is five small REST calls; speaking it directly also keeps the 5 s litellm
import out of ``batch status``.  Blocking calls are fine here: a batch lives for minutes to hours.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from winnow.engine.transport import redact

__all__ = ["AzureBatches", "BatchAPIError", "OpenAIBatches"]

DEFAULT_BASE = "https://api.openai.com/v1"
TIMEOUT = 120.0


class BatchAPIError(RuntimeError):
    """The provider refused a batch call; the message is the provider's, key redacted."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class OpenAIBatches:
    """Upload a JSONL of requests, create, watch, cancel and list batches, stream result files."""

    provider = "openai"
    endpoint = "/v1/chat/completions"  # the url of every batch line
    max_requests = 50_000  # per file (OpenAI's limit)
    max_bytes = 200 * 1024 * 1024

    def __init__(self, api_base: str | None = None, api_key: str | None = None) -> None:
        base = api_base or os.environ.get("OPENAI_BASE_URL") or os.environ.get("OPENAI_API_BASE") or DEFAULT_BASE
        self.base = base.rstrip("/")
        self.key = api_key or os.environ.get("OPENAI_API_KEY") or "no-key"
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}) if _loopback(self.base)
                                                   else urllib.request.ProxyHandler())

    # --------------------------------------------------------------------------- HTTP
    def _request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.key}"}
        if content_type:
            headers["Content-Type"] = content_type
        return http_open(self._opener, method, f"{self.base}{path}", body, headers, self.key)

    def _json(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        body = json.dumps(payload).encode() if payload is not None else None
        with self._request(method, path, body, "application/json" if body is not None else None) as response:
            return json.loads(response.read())

    # --------------------------------------------------------------------------- the API
    def upload(self, path: Path) -> str:
        """Upload a batch input file (purpose ``batch``); returns its file id."""
        boundary = f"winnow{uuid.uuid4().hex}"
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
                "Content-Type: application/jsonl\r\n\r\n").encode()
        body = head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
        with self._request("POST", "/files", body, f"multipart/form-data; boundary={boundary}") as response:
            return str(json.loads(response.read())["id"])

    def create(self, input_file_id: str, endpoint: str, metadata: dict[str, str]) -> dict[str, Any]:
        return dict(self._json("POST", "/batches", {"input_file_id": input_file_id, "endpoint": endpoint,
                                                    "completion_window": "24h", "metadata": metadata}))

    def retrieve(self, batch_id: str) -> dict[str, Any]:
        return dict(self._json("GET", f"/batches/{batch_id}"))

    def cancel(self, batch_id: str) -> dict[str, Any]:
        return dict(self._json("POST", f"/batches/{batch_id}/cancel"))

    def batches(self) -> Iterator[dict[str, Any]]:
        """Every batch the key can see, newest first (paged)."""
        after = None
        while True:
            page = self._json("GET", "/batches?limit=100" + (f"&after={after}" if after else ""))
            data = page.get("data") or []
            yield from data
            if not page.get("has_more") or not data:
                return
            after = data[-1]["id"]

    def find(self, job: str, chunk: str, requests: int, since: float | None) -> dict[str, Any] | None:
        """The batch created for ``chunk`` of ``job`` (by the metadata every batch carries)."""
        for batch in self.batches():
            meta = batch.get("metadata") or {}
            if meta.get("winnow_job") == job and meta.get("winnow_chunk") == chunk and batch.get("status") != "failed":
                return batch  # a failed batch (refused, never run) is created again
        return None

    def lines(self, file_id: str) -> Iterator[bytes]:
        """A result file's lines as they arrive (never read whole)."""
        with self._request("GET", f"/files/{file_id}/content") as response:
            for line in response:
                if line.strip():
                    yield line


class AzureBatches(OpenAIBatches):
    """Azure OpenAI's Files and Batches: ``{resource}/openai/files?api-version=...``, an ``api-key``
    header, and the deployment name as the model; the batch lines' url is ``/chat/completions``."""

    provider = "azure"
    endpoint = "/chat/completions"
    default_version = "2024-10-21"

    def __init__(self, api_base: str | None = None, api_key: str | None = None) -> None:
        base = api_base or os.environ.get("AZURE_API_BASE") or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not base:
            raise BatchAPIError("azure/ models need --api-base https://RESOURCE.openai.azure.com (or AZURE_API_BASE)")
        super().__init__(base.rstrip("/").removesuffix("/openai") + "/openai", api_key
                         or os.environ.get("AZURE_API_KEY") or os.environ.get("AZURE_OPENAI_API_KEY"))
        self.version = os.environ.get("AZURE_API_VERSION") or self.default_version

    def _request(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Any:
        headers = {"api-key": self.key}
        if content_type:
            headers["Content-Type"] = content_type
        url = f"{self.base}{path}{'&' if '?' in path else '?'}api-version={self.version}"
        return http_open(self._opener, method, url, body, headers, self.key)


def http_open(opener: Any, method: str, url: str, body: bytes | None, headers: dict[str, str], key: str) -> Any:
    """Open ``url``; a refusal or an unreachable host is a ``BatchAPIError`` (key redacted)."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        return opener.open(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:500]
        raise BatchAPIError(redact(f"{method} {url}: HTTP {exc.code}: {detail}", key), exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        raise BatchAPIError(redact(f"{method} {url}: cannot reach it: {exc}", key)) from None


def _loopback(base: str) -> bool:
    host = base.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost", "[::1]")
