"""A loopback server of the OpenAI Files and Batches API, for winnow's batch driver tests.

Files (``POST /v1/files`` multipart, ``GET /v1/files/{id}/content``) and Batches (create,
retrieve, list with metadata, cancel).  A batch is ``validating`` when created and finishes once
``delay`` seconds have passed, when it is next retrieved: each input line is answered with the
very reply the loopback chat server (tests/fakeserver.py) gives the same body, so a batch run and
an online run produce identical judgments.  Faults: ``error_ids`` (custom_ids answered in the
error file), ``expire_first`` (the first batch expires with half its lines answered),
``fail_validation`` (every batch is refused as invalid).  ``created`` counts, per custom_id,
the lines of every batch created: a request paid twice shows as 2.  ``POST /v1/chat/completions``
answers online at the same address (the same replies), so online and batch share cache keys.

Standard library HTTP server in a thread (``with BatchServer() as srv: srv.url``), or a child
process (``python tests/batchserver.py --port N``) for kill -9 tests of a winnow subprocess.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from tests.fakeserver import FakeServer, hash_messages


class BatchServer:
    def __init__(self, *, delay: float = 0.0, error_ids: set[str] | None = None, expire_first: bool = False,
                 fail_validation: bool = False, token_limit: int | None = None, port: int = 0) -> None:
        self.delay = delay
        self.error_ids = set(error_ids or ())
        self.expire_first = expire_first
        self.fail_validation = fail_validation
        self.token_limit = token_limit  # requests in batches not yet finished, at most (the enqueued limit)
        self.answered: Counter[str] = Counter()  # custom_id -> result lines produced (what is paid)
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.created: Counter[str] = Counter()
        self.online = 0  # chat completions answered online
        self.message_batches: dict[str, dict[str, Any]] = {}
        self.api_versions: set[str] = set()  # Azure's api-version query values seen
        self.lock = threading.Lock()
        self._chat = FakeServer()  # never started: only its reply builder is used
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> BatchServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any, raw: bytes | None = None) -> None:
                data = raw if raw is not None else orjson.dumps(payload)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                status, payload, raw = server.get(self.path)
                self._send(status, payload, raw)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, payload = server.post(self.path, body, self.headers.get("Content-Type") or "")
                self._send(status, payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    # ------------------------------------------------------------------ the API
    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, Any]:
        self._note_version(path)
        path = path.split("?")[0].removeprefix("/v1").removeprefix("/openai")  # OpenAI's, or Azure's paths
        with self.lock:
            if path == "/files":
                message = BytesParser(policy=HTTP).parsebytes(
                    f"Content-Type: {content_type}\r\n\r\n".encode() + body)
                data = next(p.get_payload(decode=True) for p in message.iter_parts()
                            if p.get_param("name", header="content-disposition") == "file")
                file_id = f"file-{len(self.files) + 1}"
                self.files[file_id] = data
                return 200, {"id": file_id, "object": "file", "purpose": "batch", "bytes": len(data)}
            if path == "/batches":
                request = json.loads(body)
                lines = [orjson.loads(x) for x in self.files[request["input_file_id"]].splitlines() if x.strip()]
                batch_id = f"batch_{len(self.batches) + 1}"
                self.batches[batch_id] = {
                    "id": batch_id, "object": "batch", "endpoint": request["endpoint"], "status": "validating",
                    "input_file_id": request["input_file_id"], "output_file_id": None, "error_file_id": None,
                    "metadata": request.get("metadata") or {}, "created_at": time.time(), "errors": None,
                    "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                }
                self.created.update(str(line["custom_id"]) for line in lines)
                queued = sum(b["request_counts"]["total"] for b in self.batches.values()
                             if b["id"] != batch_id and b["status"] in ("validating", "in_progress"))
                if self.token_limit is not None and queued + len(lines) > self.token_limit:
                    self.batches[batch_id]["status"] = "failed"
                    self.batches[batch_id]["errors"] = {"data": [{"code": "token_limit_exceeded", "message":
                        "Enqueued token limit reached for gpt-4o-mini in organization org-x."}]}
                return 200, self.batches[batch_id]
            if path == "/messages/batches":
                return 200, self._anthropic_create(json.loads(body))
            if path.startswith("/messages/batches/") and path.endswith("/cancel"):
                batch = self.message_batches[path.split("/")[3]]
                if batch["processing_status"] != "ended":
                    self._anthropic_end(batch, answered=0.0, canceled=True)
                return 200, batch
            if path == "/chat/completions":  # online, at the same address: the same replies
                self.online += 1
                return 200, self._answer(json.loads(body), "online")["response"]["body"]
            if path.startswith("/batches/") and path.endswith("/cancel"):
                batch = self.batches[path.split("/")[2]]
                if batch["status"] not in ("completed", "failed", "expired", "cancelled"):
                    self._finish(batch, "cancelled", answer_fraction=0.0)
                return 200, batch
        return 404, {"error": {"message": f"no route {path}"}}

    def get(self, path: str) -> tuple[int, Any, bytes | None]:
        self._note_version(path)
        route, _, query = path.partition("?")
        route = route.removeprefix("/v1").removeprefix("/openai")
        with self.lock:
            if route.startswith("/messages/batches"):
                return self._anthropic_get(route, query)
            if route.startswith("/files/") and route.endswith("/content"):
                return 200, None, self.files[route.split("/")[2]]
            if route == "/batches":
                page, more = _page(sorted(self.batches.values(), key=lambda b: b["created_at"], reverse=True),
                                   query, "after")
                return 200, {"object": "list", "data": page, "has_more": more}, None
            if route.startswith("/batches/"):
                batch = self.batches[route.split("/")[2]]
                if batch["status"] == "validating" and time.time() - batch["created_at"] >= self.delay:
                    first = batch["id"] == "batch_1"
                    if self.fail_validation:
                        batch["status"] = "failed"
                        batch["errors"] = {"data": [{"code": "invalid_json", "message": "line 1: bad request body"}]}
                    elif self.expire_first and first:
                        self._finish(batch, "expired", answer_fraction=0.5)
                    else:
                        self._finish(batch, "completed", answer_fraction=1.0)
                return 200, batch, None
        return 404, {"error": {"message": f"no route {route}"}}, None

    def _finish(self, batch: dict[str, Any], status: str, answer_fraction: float) -> None:
        lines = [orjson.loads(x) for x in self.files[batch["input_file_id"]].splitlines() if x.strip()]
        answered = lines[: int(len(lines) * answer_fraction)]
        out, errors = [], []
        for line in answered:
            custom_id = str(line["custom_id"])
            if custom_id in self.error_ids:
                errors.append({"id": f"req-{custom_id}", "custom_id": custom_id, "response": None,
                               "error": {"code": "server_error", "message": "the model failed on this request"}})
                continue
            out.append(self._answer(line["body"], custom_id))
            self.answered[custom_id] += 1
        if out:
            batch["output_file_id"] = self._store(out)
        if errors:
            batch["error_file_id"] = self._store(errors)
        batch["status"] = status
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(errors)}

    def _note_version(self, path: str) -> None:
        if "api-version=" in path:
            self.api_versions.add(path.split("api-version=", 1)[1].split("&")[0])

    # ------------------------------------------------------------------ Anthropic Message Batches
    def _anthropic_create(self, request: dict[str, Any]) -> dict[str, Any]:
        requests = request["requests"]
        batch_id = f"msgbatch_{len(self.message_batches) + 1:04d}"
        batch = {"id": batch_id, "type": "message_batch", "processing_status": "in_progress",
                 "request_counts": {"processing": len(requests), "succeeded": 0, "errored": 0, "canceled": 0,
                                    "expired": 0},
                 "created_at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                 + f".{int(time.time() % 1 * 1e6):06d}Z",
                 "ended_at": None, "results_url": None, "_requests": requests, "_created": time.time()}
        self.message_batches[batch_id] = batch
        self.created.update(str(r["custom_id"]) for r in requests)
        return self._public(batch)

    def _anthropic_get(self, route: str, query: str) -> tuple[int, Any, bytes | None]:
        parts = route.strip("/").split("/")  # messages, batches, [id, [results]]
        if len(parts) == 2:
            found, more = _page(sorted(self.message_batches.values(), key=lambda b: b["_created"], reverse=True),
                                query, "after_id")
            page = [self._public(b) for b in found]
            return 200, {"data": page, "has_more": more,
                         "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None}, None
        batch = self.message_batches[parts[2]]
        if len(parts) == 4:
            return 200, None, batch["_results"]
        if batch["processing_status"] == "in_progress" and time.time() - batch["_created"] >= self.delay:
            self._anthropic_end(batch, answered=0.5 if self.expire_first and batch["id"].endswith("0001") else 1.0)
        return 200, self._public(batch), None

    def _anthropic_end(self, batch: dict[str, Any], answered: float, canceled: bool = False) -> None:
        requests = batch["_requests"]
        done = requests[: int(len(requests) * answered)]
        lines = []
        for request in done:
            params = request["params"]
            messages = ([{"role": "system", "content": params["system"]}] if params.get("system") else []) + \
                params["messages"]
            body = {"model": params["model"], "messages": messages, "max_tokens": params.get("max_tokens")}
            choice, completion = self._chat._choice(body, None, 0, hash_messages(messages))
            message = {"id": f"msg_{request['custom_id']}", "type": "message", "role": "assistant",
                       "model": params["model"], "content": [{"type": "text", "text": choice["message"]["content"]}],
                       "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": completion}}
            lines.append({"custom_id": request["custom_id"], "result": {"type": "succeeded", "message": message}})
        rest = "canceled" if canceled else "expired"
        lines += [{"custom_id": r["custom_id"], "result": {"type": rest}} for r in requests[len(done):]]
        batch["_results"] = b"".join(orjson.dumps(line) + b"\n" for line in lines)
        batch["processing_status"] = "ended"
        batch["results_url"] = f"{self.url}/messages/batches/{batch['id']}/results"
        batch["request_counts"] = {"processing": 0, "succeeded": len(done), "errored": 0,
                                   "canceled": len(requests) - len(done) if canceled else 0,
                                   "expired": 0 if canceled else len(requests) - len(done)}

    @staticmethod
    def _public(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def _answer(self, body: dict[str, Any], custom_id: str) -> dict[str, Any]:
        """One result line: the reply tests/fakeserver.py gives this body."""
        choice, completion = self._chat._choice(body, None, 0, hash_messages(body.get("messages")))
        prompt = max(1, sum(len(str(m.get("content") or "")) for m in body["messages"]) // 4)
        payload = {"id": f"chatcmpl-{custom_id}", "object": "chat.completion", "model": body.get("model"),
                   "choices": [choice], "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                                                  "total_tokens": prompt + completion}}
        return {"id": f"req-{custom_id}", "custom_id": custom_id,
                "response": {"status_code": 200, "request_id": custom_id, "body": payload}, "error": None}

    def _store(self, items: list[dict[str, Any]]) -> str:
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = b"".join(orjson.dumps(i) + b"\n" for i in items)
        return file_id


def _page(ordered: list[dict[str, Any]], query: str, after_name: str) -> tuple[list[dict[str, Any]], bool]:
    """One page of a newest-first listing: ``limit`` items after the id named by ``after_name``."""
    params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
    if after_name in params:
        ids = [b["id"] for b in ordered]
        ordered = ordered[ids.index(params[after_name]) + 1:]
    limit = int(params.get("limit", 20))
    return ordered[:limit], len(ordered) > limit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--counts", required=True, help="where to write the created custom_id counts on SIGTERM")
    args = parser.parse_args()
    import signal
    import sys

    with BatchServer(delay=args.delay, port=args.port) as server:
        def dump(*_: Any) -> None:
            with open(args.counts, "w") as fh:
                json.dump(dict(server.created), fh)
            sys.exit(0)

        signal.signal(signal.SIGTERM, dump)
        print(f"batch server on {server.url}", flush=True)
        while True:
            time.sleep(0.5)
            with server.lock, open(args.counts + ".live", "w") as fh:
                json.dump(dict(server.created), fh)


if __name__ == "__main__":
    main()
