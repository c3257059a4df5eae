"""A small, fast, OpenAI-compatible fake LLM server for tests and benchmarks.

Why it exists: winnow's engine talks to vLLM / llama.cpp / OpenAI over HTTP, and its retry, rate-limit,
fault and kill -9 behaviour can only be tested honestly against a real socket. This server speaks the
OpenAI wire format (chat completions with logprobs and streaming, embeddings, models) and can inject
every fault a real server shows (429 + Retry-After, 5xx, 4xx, malformed bodies, hangs, dropped
connections, an RPM limit), while counting what it saw so tests can assert on it.

Two ways to run it:
- ``with FakeServer(...) as srv:`` — in-process, in a background thread with its own event loop.
- ``with FakeServerProcess(...) as srv:`` — a child process (``bench/fakeserver_main.py``), for clients
  that are themselves subprocesses and for benchmarks that need the server on its own core.

Only 127.0.0.1 is ever bound. Per-request CPU is kept tiny (orjson, no access log) so 256+ concurrent
clients are limited by the latency setting, not by the server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import math
import random
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

Responder = Callable[[dict[str, Any]], "str | dict[str, Any] | None"]
LatencySpec = "float | tuple[float, float] | Callable[[dict[str, Any]], float]"

FAULT_KINDS = ("429", "500", "503", "400", "401", "404", "malformed", "no_choices", "hang", "drop")

_ERRORS: dict[str, tuple[int, str, str | None, str]] = {
    # kind: (status, type, code, message) — shapes as returned by api.openai.com
    "429": (429, "requests", "rate_limit_exceeded", "Rate limit reached for requests (fake server)."),
    "500": (500, "server_error", None, "The server had an error while processing your request."),
    "503": (503, "server_error", "service_unavailable", "The engine is currently overloaded."),
    "400": (400, "invalid_request_error", None, "Invalid request (fake server fault)."),
    "401": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    "404": (404, "invalid_request_error", "model_not_found", "The model does not exist."),
}

_TOKEN_RE = re.compile(r" ?[A-Za-z]+| ?\d| ?[^\sA-Za-z\d]+|\s+")
_ALT_WORDS = (" the", " a", " is", " and", " of", " to", "The", " it", " not", " this", " in", " for",
              " very", " good", " response", " answer", " correct", " but", " with", " as")
_DIGITS = tuple("0123456789")


def hash_messages(messages: Any) -> str:
    """Stable short hash of a ``messages`` list; the key of the duplicate counters."""
    return hashlib.blake2b(orjson.dumps(messages, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()


def message_text(content: Any) -> str:
    """Text of a message ``content`` (plain string or a list of OpenAI content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def last_user_text(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            return message_text(m.get("content"))
    return ""


def tokenize(text: str) -> list[str]:
    """A crude GPT-like tokenisation: words with their leading space, single digits, punctuation runs."""
    return _TOKEN_RE.findall(text)


def _h(*parts: str) -> int:
    return int.from_bytes(hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest(), "big")


# ----------------------------------------------------------------------------- default responder


def _fill_schema(schema: dict[str, Any], seed: str, path: str, defs: dict[str, Any], depth: int = 0) -> Any:
    """A deterministic value that validates against simple JSON schemas (pydantic-style $defs/$ref ok)."""
    if depth > 8:
        return None
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _fill_schema(defs.get(name, {}), seed, path, defs, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][_h(seed, path) % len(schema["enum"])]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _fill_schema(options[0], seed, path, defs, depth + 1)
    typ = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    hv = _h(seed, path)
    if typ == "object":
        props = schema.get("properties", {})
        return {k: _fill_schema(v, seed, f"{path}.{k}", defs, depth + 1) for k, v in props.items()}
    if typ == "array":
        lo = int(schema.get("minItems", 1))
        hi = max(lo, min(int(schema.get("maxItems", 3)), 3))
        n = lo + hv % (hi - lo + 1)
        item = schema.get("items", {"type": "string"})
        return [_fill_schema(item, seed, f"{path}[{i}]", defs, depth + 1) for i in range(n)]
    if typ in ("integer", "number"):
        lo_v = schema.get("minimum", schema.get("exclusiveMinimum", 1))
        hi_v = schema.get("maximum", schema.get("exclusiveMaximum", max(lo_v, 1) + 4))
        lo_i, hi_i = math.ceil(lo_v), math.floor(hi_v)
        if "exclusiveMinimum" in schema and lo_i == lo_v:
            lo_i += 1
        if "exclusiveMaximum" in schema and hi_i == hi_v:
            hi_i -= 1
        if typ == "integer":
            return lo_i + hv % max(1, hi_i - lo_i + 1)
        steps = max(1, int((hi_v - lo_v) * 2))  # 0.5 steps, like judge scores
        val = lo_v + (hv % (steps + 1)) * 0.5
        return float(min(max(val, lo_v), hi_v))
    if typ == "boolean":
        return bool(hv & 1)
    if typ == "null":
        return None
    words = ("clear", "accurate", "concise", "helpful", "complete", "relevant")
    text = f"{words[hv % 6]} {words[(hv >> 8) % 6]}"
    lo_len = int(schema.get("minLength", 0))
    return text + "x" * max(0, lo_len - len(text))


def default_responder(body: dict[str, Any], seed: str | None = None) -> str:
    """Plausible, deterministic judge replies: same messages -> same reply.

    - ``response_format`` json_schema: a JSON object valid for the (simple) schema;
      ``json_object``: ``{"score": x, "explanation": ...}``.
    - InsTag-like prompts (mention tags and JSON): ``[{"tag": ..., "explanation": ...}, ...]``.
    - DEITA rank-and-score prompts (lines starting ``[k]``): ``[k] Score: n`` per item.
    - Otherwise AlpaGasus style: ``"<score>\\nThe response is accurate."`` with score in 0.5 steps.
    """
    messages = body.get("messages") or []
    seed = seed or hash_messages(messages)  # the server passes the hash it already computed
    user = last_user_text(body)
    rf = body.get("response_format") or {}
    if isinstance(rf, dict) and rf.get("type") == "json_schema":
        js = rf.get("json_schema") or {}
        schema = js.get("schema", js) if isinstance(js, dict) else {}
        return orjson.dumps(_fill_schema(schema, seed, "$", schema.get("$defs", {}))).decode()
    hv = _h(seed)
    score = 2.5 + (hv % 6) * 0.5  # 2.5 .. 5.0
    if isinstance(rf, dict) and rf.get("type") == "json_object":
        return orjson.dumps({"score": score, "explanation": "The response is accurate."}).decode()
    prompt = " ".join(message_text(m.get("content")) for m in messages if isinstance(m, dict)).lower()
    if "tag" in prompt and "json" in prompt:
        words = sorted({w for w in re.findall(r"[a-z]{4,}", user.lower())}) or ["general"]
        n = 1 + hv % 3
        tags = [words[(hv >> (4 * i)) % len(words)] for i in range(n)]
        return orjson.dumps([{"tag": f"{t} request", "explanation": f"asks about {t}"}
                             for t in dict.fromkeys(tags)]).decode()
    items = re.findall(r"^\[(\d+)\]", user, flags=re.M)
    if items:
        return "\n".join(f"[{k}] Score: {1 + _h(seed, k) % 5}" for k in dict.fromkeys(items))
    return f"{score:g}\nThe response is accurate."


def _logprob_entries(reply: str, tokens: list[str], seed: str, spec: Any, k: int) -> list[dict[str, Any]]:
    """OpenAI ``choices[i].logprobs.content`` for the reply.

    ``spec`` (from a responder's dict) may be a list of ``{"token", "logprob", "top_logprobs": {tok: lp}}``
    taken verbatim; otherwise a deterministic distribution is synthesised: the chosen token gets
    probability 0.55-0.95, alternatives (other digits for a digit token) share the rest.
    """
    out: list[dict[str, Any]] = []
    if spec is not None:
        for e in spec:
            top = e.get("top_logprobs") or {e["token"]: e.get("logprob", 0.0)}
            items = sorted(top.items(), key=lambda kv: -kv[1])[:k]
            out.append({"token": e["token"], "logprob": float(e.get("logprob", top.get(e["token"], 0.0))),
                        "bytes": list(e["token"].encode()),
                        "top_logprobs": [{"token": t, "logprob": float(lp), "bytes": list(t.encode())}
                                         for t, lp in items]})
        return out
    for i, tok in enumerate(tokens):
        hv = _h(seed, str(i))
        p = 0.55 + (hv % 41) / 100.0
        lp = math.log(p)
        top = [{"token": tok, "logprob": lp, "bytes": list(tok.encode())}]
        stripped = tok.strip()
        is_digit = stripped.isdigit() and len(stripped) == 1
        # digit tokens: the nearest digits are the likeliest alternatives (what score logprobs look like)
        pool = sorted(_DIGITS, key=lambda d: abs(int(d) - int(stripped))) if is_digit else _ALT_WORDS
        prefix = tok[: len(tok) - len(stripped)] if is_digit else ""
        rest, j = 1.0 - p, 0
        for alt in pool:
            if len(top) >= k:
                break
            cand = prefix + alt
            if cand == tok:
                continue
            j += 1
            top.append({"token": cand, "logprob": math.log(rest / (2 ** j)), "bytes": list(cand.encode())})
        out.append({"token": tok, "logprob": lp, "bytes": list(tok.encode()), "top_logprobs": top[:k]})
    return out


# ----------------------------------------------------------------------------- records and stats


class RedactedHeaders(dict[str, str]):
    """Request headers (lower-case names); repr hides credentials so a failing test never prints a key."""

    _SECRET = ("authorization", "api-key", "x-api-key")

    def __repr__(self) -> str:
        return repr({k: ("<redacted>" if k in self._SECRET else v) for k, v in self.items()})

    __str__ = __repr__


@dataclass
class RequestRecord:
    """One received request (kept only when ``record=True``)."""

    index: int
    method: str
    path: str
    body: Any
    headers: RedactedHeaders
    t: float
    status: int | None = None
    fault: str | None = None
    reply: str | None = None


@dataclass
class _Script:
    match: str
    reply: Any = None  # str | dict | callable(body) -> str|dict
    fault: str | None = None
    times: int | None = None  # None = forever


@dataclass
class _Stats:
    total: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)
    served: Counter[tuple[str, str]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    api_index: int = 0
    log: list[RequestRecord] = field(default_factory=list)


# ----------------------------------------------------------------------------- the server


class FakeServer:
    """OpenAI-compatible fake server running in a background thread (see module docstring).

    All attributes below may be changed while the server runs (from the test thread).
    """

    def __init__(
        self,
        *,
        latency: Any = 0.0,
        responder: Responder | None = None,
        faults: dict[str, float] | None = None,
        schedule: list[str | None] | None = None,
        retry_after: float = 1.0,
        hang_seconds: float = 30.0,
        rpm: int | None = None,
        rpm_window: float = 60.0,
        seed: int = 0,
        record: bool = False,
        embedding_dim: int = 64,
        embedding_mode: str = "hash",
        models: tuple[str, ...] | list[str] = ("fake-model",),
        strict_models: bool = False,
        api_key: str | None = None,
        port: int = 0,
    ) -> None:
        for kind in list(faults or {}) + [k for k in schedule or [] if k]:
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        self.latency = latency
        self.responder: Responder = responder or default_responder
        self.faults: dict[str, float] = dict(faults or {})
        self.schedule: list[str | None] = list(schedule or [])
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.rpm = rpm
        self.rpm_window = rpm_window
        self.record = record
        self.embedding_dim = embedding_dim
        self.embedding_mode = embedding_mode
        self.models = list(models)
        self.strict_models = strict_models
        self.api_key = api_key
        self.seed = seed
        self.host = "127.0.0.1"
        self.port = port
        self._rng = random.Random(seed)  # faults
        self._lat_rng = random.Random(seed + 1)  # jittered latency, kept apart so faults stay reproducible
        self._lock = threading.Lock()
        self._stats = _Stats()
        self._scripts: list[_Script] = []
        self._fail_next: deque[str] = deque()
        self._embeddings: dict[str, list[float]] = {}
        self._window: deque[float] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ control API (test thread)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no ``/v1``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` — what to pass as ``api_base`` / ``base_url``."""
        return self.base_url + "/v1"

    def script(self, match: str, reply: Any = None, *, fault: str | None = None,
               times: int | None = None) -> None:
        """For requests whose last user message contains ``match``: reply ``reply`` (str, dict as a
        responder returns, or callable(body)) or fail with ``fault``; ``times`` limits how often."""
        if fault is not None and fault not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault!r}")
        with self._lock:
            self._scripts.append(_Script(match, reply, fault, times))

    def fail_next(self, kind: str, n: int = 1) -> None:
        """The next ``n`` API requests (chat + embeddings) get fault ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._fail_next.extend([kind] * n)

    def set_embedding(self, text: str, vector: list[float]) -> None:
        """Scripted embedding for an exact input text (returned as given, not normalised)."""
        with self._lock:
            self._embeddings[text] = [float(x) for x in vector]

    def reset(self) -> None:
        """Clear counters, log, scripts, pending faults, the RPM window and re-seed the RNG."""
        with self._lock:
            self._stats = _Stats()
            self._scripts.clear()
            self._fail_next.clear()
            self._window.clear()
            self._rng = random.Random(self.seed)
            self._lat_rng = random.Random(self.seed + 1)

    def stats(self) -> dict[str, Any]:
        """JSON-able snapshot (the same as ``GET /stats``)."""
        with self._lock:
            s = self._stats
            return {
                "total": s.total,
                "by_status": {str(k): v for k, v in s.by_status.items()},
                "by_path": dict(s.by_path),
                "completions": sum(s.seen.values()),
                "distinct": len(s.seen),
                "duplicates": sum(v - 1 for v in s.seen.values()),
                "max_seen": max(s.seen.values(), default=0),
                "seen": {f"{m}|{h}": v for (m, h), v in s.seen.items()},
                "served": {f"{m}|{h}": v for (m, h), v in s.served.items()},
                "faults": dict(s.faults),
                "in_flight": s.in_flight,
                "max_in_flight": s.max_in_flight,
            }

    @property
    def total(self) -> int:
        return self._stats.total

    @property
    def by_status(self) -> Counter[int]:
        with self._lock:
            return Counter(self._stats.by_status)

    @property
    def faults_count(self) -> Counter[str]:
        with self._lock:
            return Counter(self._stats.faults)

    @property
    def in_flight(self) -> int:
        return self._stats.in_flight

    @property
    def max_in_flight(self) -> int:
        return self._stats.max_in_flight

    @property
    def requests(self) -> list[RequestRecord]:
        """Recorded requests in arrival order (empty unless ``record=True``)."""
        with self._lock:
            return list(self._stats.log)

    def seen_count(self, messages: Any, model: str | None = None) -> int:
        """How many chat requests carried exactly these ``messages`` (any model if ``model`` is None)."""
        h = hash_messages(messages)
        with self._lock:
            return sum(v for (m, hh), v in self._stats.seen.items() if hh == h and model in (None, m))

    def seen_counts(self) -> Counter[tuple[str, str]]:
        """``{(model, hash_messages(messages)): times received}`` for all chat requests."""
        with self._lock:
            return Counter(self._stats.seen)

    def served_counts(self) -> Counter[tuple[str, str]]:
        """Like ``seen_counts`` but only requests answered 200 with a proper completion."""
        with self._lock:
            return Counter(self._stats.served)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FakeServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._astart())
            except BaseException as exc:  # surfaced to start()
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name=f"fakeserver-{id(self):x}", daemon=True)
        self._thread.start()
        ready.wait(30)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        loop = self._loop
        if self._runner is not None:
            fut = asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop)
            try:
                fut.result(10)
            except Exception:
                pass
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/chat/completions", self._chat)
        app.router.add_post("/v1/embeddings", self._embed)
        app.router.add_post("/embeddings", self._embed)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/models", self._models)
        app.router.add_get("/health", self._health)
        app.router.add_get("/stats", self._stats_h)
        app.router.add_post("/reset", self._reset_h)
        app.router.add_post("/config", self._config_h)
        return app

    async def _astart(self) -> None:
        self._runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False,
                                     handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=2048, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        self.port = getattr(server, "sockets")[0].getsockname()[1]  # noqa: B009 (not in the ABC's stubs)

    # ------------------------------------------------------------------ request handling

    def _begin(self, request: web.Request, body: Any) -> RequestRecord:
        with self._lock:
            s = self._stats
            s.total += 1
            s.by_path[request.path] += 1
            s.in_flight += 1
            s.max_in_flight = max(s.max_in_flight, s.in_flight)
            headers = (RedactedHeaders((k.lower(), v) for k, v in request.headers.items())
                       if self.record else RedactedHeaders())
            rec = RequestRecord(len(s.log), request.method, request.path, body, headers, time.time())
            if self.record:
                s.log.append(rec)
            return rec

    def _end(self, rec: RequestRecord, status: int, fault: str | None = None,
             reply: str | None = None) -> None:
        with self._lock:
            if rec.status is not None:
                return
            self._stats.by_status[status] += 1
            self._stats.in_flight -= 1
            if fault:
                self._stats.faults[fault] += 1
            rec.status, rec.fault, rec.reply = status, fault or rec.fault, reply

    def _abandon(self, rec: RequestRecord) -> None:
        """Handler cancelled (client went away) or crashed before answering: no status, in-flight -1."""
        with self._lock:
            if rec.status is None:
                rec.status = 0
                self._stats.in_flight -= 1

    def _pick_fault(self, body: dict[str, Any]) -> tuple[str | None, _Script | None]:
        """Fault for this API request: fail_next queue, then schedule, then scripts, then probabilities."""
        with self._lock:
            idx = self._stats.api_index
            self._stats.api_index += 1
            text = last_user_text(body) if self._scripts else ""
            script = None
            for sc in self._scripts:
                if sc.match in text and (sc.times is None or sc.times > 0):
                    if sc.times is not None:
                        sc.times -= 1
                    script = sc
                    break
            if self._fail_next:
                return self._fail_next.popleft(), script
            if idx < len(self.schedule) and self.schedule[idx]:
                return self.schedule[idx], script
            if script is not None and script.fault:
                return script.fault, script
            if self.faults:
                u = self._rng.random()
                for kind, p in self.faults.items():
                    if u < p:
                        return kind, script
                    u -= p
            return None, script

    def _rpm_check(self) -> float | None:
        """Sliding window: None if admitted (and counted), else seconds until a slot frees."""
        if not self.rpm:
            return None
        now = time.monotonic()
        with self._lock:
            w = self._window
            while w and now - w[0] >= self.rpm_window:
                w.popleft()
            if len(w) < self.rpm:
                w.append(now)
                return None
            return max(0.001, self.rpm_window - (now - w[0]))

    def _latency(self, body: dict[str, Any]) -> float:
        lat = self.latency
        if callable(lat):
            return float(lat(body))
        if isinstance(lat, tuple):
            with self._lock:
                return self._lat_rng.uniform(lat[0], lat[1])
        return float(lat)

    @staticmethod
    def _fmt_secs(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:.3f}"

    def _error(self, kind: str, retry_after: float | None = None) -> web.Response:
        status, typ, code, msg = _ERRORS[kind]
        headers = {}
        if status == 429:
            ra = self.retry_after if retry_after is None else retry_after
            headers = {"Retry-After": self._fmt_secs(ra), "retry-after-ms": str(int(ra * 1000))}
            if self.rpm:
                headers.update({"x-ratelimit-limit-requests": str(self.rpm),
                                "x-ratelimit-remaining-requests": "0",
                                "x-ratelimit-reset-requests": f"{ra:.3f}s"})
        body = {"error": {"message": msg, "type": typ, "param": None, "code": code}}
        return web.Response(status=status, body=orjson.dumps(body), content_type="application/json",
                            headers=headers)

    async def _guard(self, request: web.Request, body: Any, rec: RequestRecord
                     ) -> tuple[web.StreamResponse | None, _Script | None]:
        """Auth, model, RPM, faults. Returns (response to send, or None to proceed normally; script)."""
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            self._end(rec, 401, "auth")
            return self._error("401"), None
        if not isinstance(body, dict):
            self._end(rec, 400, "bad_json")
            return self._error("400"), None
        wait = self._rpm_check()
        if wait is not None:
            self._end(rec, 429, "rpm")
            return self._error("429", retry_after=wait), None
        if self.strict_models and body.get("model") not in self.models:
            self._end(rec, 404, "model")
            return self._error("404"), None
        kind, script = self._pick_fault(body)
        if kind is None:
            return None, script
        if kind != "429":
            delay = self._latency(body)
            if delay > 0:
                await asyncio.sleep(delay)
        if kind in _ERRORS:
            self._end(rec, _ERRORS[kind][0], kind)
            return self._error(kind), script
        if kind == "malformed":
            self._end(rec, 200, kind)
            return web.Response(status=200, body=b'{"id": "x", "choices": [',
                                content_type="application/json"), None
        if kind == "no_choices":
            self._end(rec, 200, kind)
            return web.Response(status=200, body=b'{"id": "chatcmpl-x", "object": "chat.completion"}',
                                content_type="application/json"), None
        if kind == "drop":
            self._end(rec, 0, kind)
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError  # aiohttp discards the handler; the client sees a disconnect
        # hang: record it as a fault, then sleep past the client's timeout and answer normally.
        with self._lock:
            self._stats.faults["hang"] += 1
        rec.fault = "hang"
        await asyncio.sleep(self.hang_seconds)
        return None, script

    async def _read_json(self, request: web.Request) -> Any:
        try:
            return orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._read_json(request)
        rec = self._begin(request, body)
        key = ("", "")
        try:
            if isinstance(body, dict):
                key = (str(body.get("model")), hash_messages(body.get("messages")))
                with self._lock:
                    self._stats.seen[key] += 1
            resp, script = await self._guard(request, body, rec)
            if resp is not None:
                return resp
            assert isinstance(body, dict)
            delay = self._latency(body)
            if delay > 0:
                await asyncio.sleep(delay)
            return await self._complete(request, body, rec, key, script)
        finally:
            self._abandon(rec)

    def _choice(self, body: dict[str, Any], script: _Script | None, index: int,
                seed: str) -> tuple[dict[str, Any], int]:
        out: Any = None
        if script is not None and script.reply is not None:
            out = script.reply(body) if callable(script.reply) else script.reply
        if out is None and self.responder is not default_responder:
            out = self.responder(body)
        if out is None:
            out = default_responder(body, seed) if index == 0 else default_responder(body, f"{seed}:{index}")
        spec = None
        finish = "stop"
        if isinstance(out, dict):
            spec = out.get("logprobs")
            finish = out.get("finish_reason", "stop")
            content = str(out.get("content", ""))
        else:
            content = str(out)
        tokens = tokenize(content)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and 0 < limit < len(tokens):
            tokens = tokens[:limit]
            content = "".join(tokens)
            finish = "length"
        choice: dict[str, Any] = {"index": index, "message": {"role": "assistant", "content": content},
                                  "logprobs": None, "finish_reason": finish}
        if body.get("logprobs"):
            k = int(body.get("top_logprobs") or 0)
            choice["logprobs"] = {"content": _logprob_entries(content, tokens, f"{seed}:{index}", spec, k)}
        return choice, len(tokens)

    async def _complete(self, request: web.Request, body: dict[str, Any], rec: RequestRecord,
                        key: tuple[str, str], script: _Script | None) -> web.StreamResponse:
        n = int(body.get("n") or 1)
        choices, completion_tokens = [], 0
        for i in range(n):
            c, nt = self._choice(body, script, i, key[1])
            choices.append(c)
            completion_tokens += nt
        prompt_chars = sum(len(message_text(m.get("content"))) for m in body.get("messages") or []
                           if isinstance(m, dict))
        prompt_tokens = max(1, prompt_chars // 4)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        rid = f"chatcmpl-{key[1]}{self._stats.total:x}"
        created = int(time.time())
        model = body.get("model") or "fake-model"
        with self._lock:
            self._stats.served[key] += 1
        self._end(rec, 200, None, choices[0]["message"]["content"])
        if body.get("stream"):
            return await self._stream(request, rid, created, model, choices, usage, body)
        payload = {"id": rid, "object": "chat.completion", "created": created, "model": model,
                   "system_fingerprint": "fp_fake", "choices": choices, "usage": usage}
        return web.Response(body=orjson.dumps(payload), content_type="application/json")

    async def _stream(self, request: web.Request, rid: str, created: int, model: str,
                      choices: list[dict[str, Any]], usage: dict[str, int], body: dict[str, Any]
                      ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        base = {"id": rid, "object": "chat.completion.chunk", "created": created, "model": model}

        async def send(obj: Any) -> None:
            await resp.write(b"data: " + orjson.dumps(obj) + b"\n\n")

        for c in choices:
            i = c["index"]
            await send({**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                             "finish_reason": None}]})
            for tok in tokenize(c["message"]["content"]):
                await send({**base, "choices": [{"index": i, "delta": {"content": tok},
                                                 "finish_reason": None}]})
            await send({**base, "choices": [{"index": i, "delta": {}, "finish_reason": c["finish_reason"]}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await send({**base, "choices": [], "usage": usage})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    def embed_text(self, text: str, dim: int | None = None) -> list[float]:
        """The vector ``/v1/embeddings`` returns for ``text`` (scripted, else hash- or bag-of-words-seeded,
        unit length). ``embedding_mode="bag"`` sums per-word vectors, so texts sharing words are similar."""
        dim = dim or self.embedding_dim
        if text in self._embeddings:
            return self._embeddings[text]
        units = re.findall(r"\w+", text.lower()) if self.embedding_mode == "bag" else [text]
        vec = [0.0] * dim
        for u in units or [""]:
            rng = random.Random(_h("emb", u))
            for i in range(dim):
                vec[i] += rng.gauss(0.0, 1.0)
        norm = math.sqrt(sum(x * x for x in vec)) or 1.0
        return [x / norm for x in vec]

    async def _embed(self, request: web.Request) -> web.StreamResponse:
        body = await self._read_json(request)
        rec = self._begin(request, body)
        try:
            resp, _ = await self._guard(request, body, rec)
            if resp is not None:
                return resp
            assert isinstance(body, dict)
            delay = self._latency(body)
            if delay > 0:
                await asyncio.sleep(delay)
            inputs = body.get("input")
            if not isinstance(inputs, list) or (inputs and isinstance(inputs[0], int)):
                inputs = [inputs]
            dim = body.get("dimensions") or self.embedding_dim
            b64 = body.get("encoding_format") == "base64"
            data = []
            for i, x in enumerate(inputs):
                vec = self.embed_text(x if isinstance(x, str) else str(x), dim)
                emb: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if b64 else vec
                data.append({"object": "embedding", "index": i, "embedding": emb})
            toks = max(1, sum(len(str(x)) for x in inputs) // 4)
            self._end(rec, 200)
            return web.Response(body=orjson.dumps({"object": "list", "data": data,
                                                   "model": body.get("model") or "fake-embed",
                                                   "usage": {"prompt_tokens": toks, "total_tokens": toks}}),
                                content_type="application/json")
        finally:
            self._abandon(rec)

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fakeserver"} for m in self.models]
        return web.Response(body=orjson.dumps({"object": "list", "data": data}),
                            content_type="application/json")

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(body=b'{"status": "ok"}', content_type="application/json")

    async def _stats_h(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(self.stats()), content_type="application/json")

    async def _reset_h(self, request: web.Request) -> web.Response:
        self.reset()
        return web.Response(body=b'{"status": "reset"}', content_type="application/json")

    async def _config_h(self, request: web.Request) -> web.Response:
        """Runtime reconfiguration, for servers in another process (see FakeServerProcess.configure)."""
        cfg = await self._read_json(request) or {}
        try:
            self.apply_config(cfg)
        except (ValueError, TypeError, KeyError) as exc:
            return web.Response(status=400, body=orjson.dumps({"error": {"message": str(exc)}}),
                                content_type="application/json")
        return web.Response(body=b'{"status": "ok"}', content_type="application/json")

    def apply_config(self, cfg: dict[str, Any]) -> None:
        """Keys: latency, faults, schedule, retry_after, hang_seconds, rpm, rpm_window, record,
        fail_next [kind, n], script [{match, reply, fault, times}], embeddings {text: vector}."""
        simple = ("faults", "schedule", "retry_after", "hang_seconds", "rpm", "rpm_window", "record")
        for k in simple:
            if k in cfg:
                setattr(self, k, cfg[k])
        if "latency" in cfg:
            lat = cfg["latency"]
            self.latency = tuple(lat) if isinstance(lat, list) else lat
        if "fail_next" in cfg:
            self.fail_next(cfg["fail_next"][0], int(cfg["fail_next"][1]))
        for sc in cfg.get("script", []):
            self.script(sc["match"], sc.get("reply"), fault=sc.get("fault"), times=sc.get("times"))
        for text, vec in (cfg.get("embeddings") or {}).items():
            self.set_embedding(text, vec)
        unknown = set(cfg) - {*simple, "latency", "fail_next", "script", "embeddings"}
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")


# ----------------------------------------------------------------------------- subprocess mode


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="OpenAI-compatible fake LLM server (prints 'READY <port>').")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.0, help="seconds per reply")
    p.add_argument("--latency-max", type=float, default=None, help="if set, latency ~ U(latency, max)")
    p.add_argument("--fault", action="append", default=[], metavar="KIND=P",
                   help=f"fault probability, repeatable; kinds: {', '.join(FAULT_KINDS)}")
    p.add_argument("--fail-first", action="append", default=[], metavar="KIND:N",
                   help="the first N API requests get KIND (repeatable, in order)")
    p.add_argument("--script", action="append", default=[], metavar="SUBSTR=>REPLY",
                   help="reply REPLY when the last user message contains SUBSTR")
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("--hang-seconds", type=float, default=30.0)
    p.add_argument("--rpm", type=int, default=None)
    p.add_argument("--rpm-window", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--record", action="store_true")
    p.add_argument("--embedding-dim", type=int, default=64)
    p.add_argument("--embedding-mode", choices=("hash", "bag"), default="hash")
    p.add_argument("--model", action="append", default=None, help="model ids for /v1/models")
    p.add_argument("--strict-models", action="store_true")
    p.add_argument("--api-key", default=None)
    return p


def server_from_args(args: argparse.Namespace) -> FakeServer:
    faults = {}
    for spec in args.fault:
        kind, _, prob = spec.partition("=")
        faults[kind] = float(prob)
    schedule: list[str | None] = []
    for spec in args.fail_first:
        kind, _, n = spec.partition(":")
        schedule += [kind] * int(n or 1)
    latency: Any = args.latency if args.latency_max is None else (args.latency, args.latency_max)
    srv = FakeServer(latency=latency, faults=faults, schedule=schedule, retry_after=args.retry_after,
                     hang_seconds=args.hang_seconds, rpm=args.rpm, rpm_window=args.rpm_window,
                     seed=args.seed, record=args.record, embedding_dim=args.embedding_dim,
                     embedding_mode=args.embedding_mode, models=args.model or ["fake-model"],
                     strict_models=args.strict_models, api_key=args.api_key, port=args.port)
    for spec in args.script:
        match, sep, reply = spec.partition("=>")
        if not sep:
            raise SystemExit(f"--script {spec!r}: expected SUBSTR=>REPLY")
        srv.script(match, reply.replace("\\n", "\n"))
    return srv


def main(argv: list[str] | None = None) -> None:
    """Run in the foreground of this process until killed; prints ``READY <port>`` when listening."""
    srv = server_from_args(build_parser().parse_args(argv))

    async def serve() -> None:
        loop = srv._loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await srv._astart()
        print(f"READY {srv.port}", flush=True)
        await stop.wait()
        if srv._runner is not None:
            await srv._runner.cleanup()

    asyncio.run(serve())


class FakeServerProcess:
    """The fake server in a child process; keyword args mirror the CLI flags of ``bench/fakeserver_main.py``.

    ``faults`` is ``{kind: probability}``, ``schedule`` a list of kinds for the first requests,
    ``scripts`` ``{substring: reply}``. Killed (SIGKILL) on exit.
    """

    MAIN = Path(__file__).resolve().parents[1] / "bench" / "fakeserver_main.py"

    def __init__(self, *, latency: float = 0.0, latency_max: float | None = None,
                 faults: dict[str, float] | None = None, schedule: list[str] | None = None,
                 scripts: dict[str, str] | None = None, retry_after: float = 1.0,
                 hang_seconds: float = 30.0, rpm: int | None = None, rpm_window: float = 60.0,
                 seed: int = 0, record: bool = False, embedding_dim: int = 64, embedding_mode: str = "hash",
                 models: list[str] | None = None, api_key: str | None = None, port: int = 0,
                 extra_args: list[str] | None = None, cpu: int | None = None) -> None:
        args = ["--port", str(port), "--latency", str(latency), "--retry-after", str(retry_after),
                "--hang-seconds", str(hang_seconds), "--rpm-window", str(rpm_window), "--seed", str(seed),
                "--embedding-dim", str(embedding_dim), "--embedding-mode", embedding_mode]
        if latency_max is not None:
            args += ["--latency-max", str(latency_max)]
        for k, p in (faults or {}).items():
            args += ["--fault", f"{k}={p}"]
        for k in schedule or []:
            args += ["--fail-first", f"{k}:1"]
        for m, r in (scripts or {}).items():
            args += ["--script", f"{m}=>{r}"]
        if rpm:
            args += ["--rpm", str(rpm)]
        if record:
            args.append("--record")
        for m in models or []:
            args += ["--model", m]
        if api_key is not None:
            args += ["--api-key", api_key]
        self.argv = [sys.executable, str(self.MAIN), *args, *(extra_args or [])]
        self.cpu = cpu
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + "/v1"

    def start(self, timeout: float = 20.0) -> FakeServerProcess:
        argv = (["taskset", "-c", str(self.cpu)] if self.cpu is not None else []) + self.argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=None, text=True)
        assert self.proc.stdout is not None
        result: list[str] = []
        stdout = self.proc.stdout
        t = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        line = result[0] if result else ""
        if not line.startswith("READY "):
            self.kill()
            raise RuntimeError(f"fake server did not start: {line!r} (argv {self.argv})")
        self.port = int(line.split()[1])
        return self

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = orjson.dumps(payload) if payload is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return orjson.loads(r.read())

    def stats(self) -> dict[str, Any]:
        """``GET /stats`` (same keys as ``FakeServer.stats()``)."""
        stats: dict[str, Any] = self._call("GET", "/stats")
        return stats

    def reset(self) -> None:
        self._call("POST", "/reset", {})

    def configure(self, **cfg: Any) -> None:
        """``POST /config``; keys as in ``FakeServer.apply_config``."""
        self._call("POST", "/config", cfg)

    def restart(self, timeout: float = 20.0) -> FakeServerProcess:
        """SIGKILL the server if alive and start a fresh one on the same port (counters start at 0)."""
        self.kill()
        if self.port:
            i = self.argv.index("--port")
            self.argv[i + 1] = str(self.port)
        return self.start(timeout)

    def kill(self) -> None:
        """SIGKILL (like ``kill -9``): in-flight requests see a dropped connection."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> FakeServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


if __name__ == "__main__":
    main()
