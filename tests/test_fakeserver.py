"""Tests of the fake OpenAI-compatible server, through the openai SDK, litellm and raw aiohttp.

The rest of the suite trusts this server to behave like vLLM / llama.cpp / OpenAI, so each fault kind,
the RPM limit, the reply shapes and the counters are checked here against real clients on loopback.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import aiohttp
import openai
import pytest

try:
    from fakeserver import FAULT_KINDS, FakeServer, FakeServerProcess, default_responder, hash_messages
except ImportError:  # tests/ imported as a package
    from tests.fakeserver import (  # type: ignore[no-redef]
        FAULT_KINDS,
        FakeServer,
        FakeServerProcess,
        default_responder,
        hash_messages,
    )

MSGS: Any = [{"role": "system", "content": "You are a judge."},
        {"role": "user", "content": "###Instruction:\nAdd 2 and 2.\n\n### Response:\n4\n\nRate it."}]


def client(srv: FakeServer | FakeServerProcess, **kw: Any) -> openai.AsyncOpenAI:
    kw.setdefault("max_retries", 0)
    return openai.AsyncOpenAI(base_url=srv.url, api_key="sk-test-key", **kw)


async def raw_post(url: str, body: dict[str, Any], timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s:
        async with s.post(url, json=body) as r:
            return r.status, dict(r.headers), await r.read()


def chat_body(content: str = "hello", **kw: Any) -> dict[str, Any]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": content}], **kw}


def test_openai_sdk_reply_usage_headers_and_determinism() -> None:
    with FakeServer(record=True) as srv:
        assert srv.url.startswith("http://127.0.0.1:") and srv.url.endswith("/v1") and srv.port > 0

        async def go() -> list[Any]:
            async with client(srv) as c:
                return [await c.chat.completions.create(model="judge", messages=MSGS, temperature=0)
                        for _ in range(2)]

        r1, r2 = asyncio.run(go())
        text = r1.choices[0].message.content
        assert text == r2.choices[0].message.content == default_responder({"messages": MSGS})
        first_line = text.splitlines()[0]
        assert 0 <= float(first_line) <= 5 and text.endswith("The response is accurate.")
        assert r1.object == "chat.completion" and r1.model == "judge" and r1.id.startswith("chatcmpl-")
        assert r1.choices[0].finish_reason == "stop"
        prompt_chars = sum(len(m["content"]) for m in MSGS)
        assert r1.usage.prompt_tokens == prompt_chars // 4
        assert r1.usage.total_tokens == r1.usage.prompt_tokens + r1.usage.completion_tokens > 0
        recs = srv.requests
        assert len(recs) == 2 and recs[0].body["temperature"] == 0 and recs[0].status == 200
        assert recs[0].headers["authorization"] == "Bearer sk-test-key"
        assert "sk-test-key" not in repr(recs[0].headers)
        assert srv.seen_count(MSGS) == 2 and srv.seen_count(MSGS, model="other") == 0
        assert srv.stats()["duplicates"] == 1 and srv.seen_counts()[("judge", hash_messages(MSGS))] == 2


def test_logprobs_shape_and_max_tokens_through_sdk() -> None:
    with FakeServer() as srv:
        async def go() -> Any:
            async with client(srv) as c:
                r = await c.chat.completions.create(model="m", messages=MSGS, logprobs=True, top_logprobs=5)
                cut = await c.chat.completions.create(model="m", messages=MSGS, max_tokens=2)
                return r, cut

        r, cut = asyncio.run(go())
        content = r.choices[0].message.content
        lp = r.choices[0].logprobs.content
        assert "".join(t.token for t in lp) == content
        for t in lp:
            assert t.logprob <= 0 and bytes(t.bytes).decode() == t.token
            assert len(t.top_logprobs) == 5 and t.top_logprobs[0].token == t.token
            assert sum(2.718281828 ** a.logprob for a in t.top_logprobs) <= 1.0 + 1e-9
        first = lp[0]  # the score digit: alternatives are the nearest digits
        assert first.token.isdigit() and all(a.token.isdigit() for a in first.top_logprobs)
        assert abs(int(first.top_logprobs[1].token) - int(first.token)) == 1
        assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens == 2


def test_scripted_logprobs_and_replies() -> None:
    spec = [{"token": "5", "logprob": -0.2, "top_logprobs": {"5": -0.2, "4": -1.9, "6": -3.0}}]
    with FakeServer(responder=lambda body: {"content": "5", "logprobs": spec}) as srv:
        srv.script("banana", "yellow", times=1)
        srv.script("apple", lambda body: f"red:{body['model']}")
        srv.script("boom", fault="500")

        async def go() -> list[Any]:
            async with client(srv) as c:
                out = []
                for q in ("banana", "banana", "apple", "other"):
                    r = await c.chat.completions.create(model="m", messages=[{"role": "user", "content": q}],
                                                        logprobs=True, top_logprobs=2)
                    out.append(r)
                with pytest.raises(openai.InternalServerError):
                    await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "boom!"}])
                return out

        r = asyncio.run(go())
        assert [x.choices[0].message.content for x in r] == ["yellow", "5", "red:m", "5"]
        top = r[3].choices[0].logprobs.content[0].top_logprobs
        assert [(t.token, t.logprob) for t in top] == [("5", -0.2), ("4", -1.9)]
        assert srv.faults_count["500"] == 1


def test_json_schema_replies_validate() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = {
        "type": "object",
        "$defs": {"Tag": {"type": "object", "properties": {"tag": {"type": "string"},
                                                          "explanation": {"type": "string"}},
                          "required": ["tag", "explanation"]}},
        "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 6},
                       "quality": {"type": "number", "minimum": 0, "maximum": 5},
                       "label": {"enum": ["good", "bad"]},
                       "ok": {"type": "boolean"},
                       "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                       "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}, "minItems": 1}},
        "required": ["score", "quality", "label", "ok", "note", "tags"],
    }
    rf = {"type": "json_schema", "json_schema": {"name": "r", "schema": schema, "strict": True}}
    outs = set()
    for i in range(12):
        text = default_responder({"messages": [{"role": "user", "content": f"q{i}"}], "response_format": rf})
        jsonschema.validate(json.loads(text), schema)
        outs.add(text)
    assert len(outs) > 3  # values vary with the prompt, so tests can see different scores
    tags = default_responder({"messages": [{"role": "system", "content": "Tag the query; answer in JSON."},
                                           {"role": "user", "content": "Write a poem about winter"}]})
    assert all(set(t) == {"tag", "explanation"} for t in json.loads(tags))


def test_litellm_acompletion_and_embeddings() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    with FakeServer(record=True, embedding_dim=16) as srv:
        async def go() -> Any:
            r = await litellm.acompletion(model="openai/judge-x", api_base=srv.url, api_key="sk-lite",
                                          messages=MSGS, temperature=0, logprobs=True, top_logprobs=3,
                                          num_retries=0)
            e = await litellm.aembedding(model="openai/emb", api_base=srv.url, api_key="sk-lite",
                                         input=["a b", "c"])
            return r, e

        r, e = asyncio.run(go())
        assert r.choices[0].message.content == default_responder({"messages": MSGS})
        assert len(r.choices[0].logprobs["content"][0]["top_logprobs"]) == 3
        assert r.usage.total_tokens > 0
        assert srv.requests[0].body["model"] == "judge-x"
        assert srv.requests[0].headers["authorization"] == "Bearer sk-lite"
        assert [len(d["embedding"]) for d in e.data] == [16, 16]


def test_error_faults_through_sdk_and_raw() -> None:
    expected = {"400": openai.BadRequestError, "401": openai.AuthenticationError,
                "404": openai.NotFoundError, "429": openai.RateLimitError,
                "500": openai.InternalServerError, "503": openai.InternalServerError}
    with FakeServer(retry_after=7) as srv:
        async def go() -> None:
            async with client(srv) as c:
                for kind, exc in expected.items():
                    srv.fail_next(kind)
                    with pytest.raises(exc) as info:
                        await c.chat.completions.create(model="m", messages=MSGS)
                    assert info.value.status_code == int(kind)
                    err: Any = info.value.body  # the SDK unwraps {"error": {...}}: OpenAI error shape
                    assert err["type"] and err["message"]
                srv.fail_next("429")
                status, headers, body = await raw_post(srv.url + "/chat/completions", chat_body())
                assert status == 429 and headers["Retry-After"] == "7" and headers["retry-after-ms"] == "7000"
                assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"
                srv.fail_next("malformed")
                status, _, body = await raw_post(srv.url + "/chat/completions", chat_body())
                assert status == 200
                with pytest.raises(json.JSONDecodeError):
                    json.loads(body)
                srv.fail_next("no_choices")
                status, _, body = await raw_post(srv.url + "/chat/completions", chat_body())
                assert status == 200 and "choices" not in json.loads(body)

        asyncio.run(go())
        st = srv.stats()
        assert st["faults"] == {"400": 1, "401": 1, "404": 1, "429": 2, "500": 1, "503": 1,
                                "malformed": 1, "no_choices": 1}
        assert st["by_status"]["429"] == 2 and st["by_status"]["200"] == 2 and st["in_flight"] == 0


def test_drop_and_hang() -> None:
    with FakeServer(hang_seconds=20) as srv:
        async def go() -> None:
            async with client(srv, timeout=0.3) as c:
                srv.fail_next("drop")
                with pytest.raises(openai.APIConnectionError):
                    await c.chat.completions.create(model="m", messages=MSGS)
                srv.fail_next("drop")
                with pytest.raises(aiohttp.ClientConnectionError):
                    await raw_post(srv.url + "/chat/completions", chat_body())
                srv.fail_next("hang")
                t0 = time.monotonic()
                with pytest.raises(openai.APITimeoutError):
                    await c.chat.completions.create(model="m", messages=MSGS)
                assert time.monotonic() - t0 < 2
                ok = await c.chat.completions.create(model="m", messages=MSGS)  # server still healthy
                assert ok.choices[0].message.content

        asyncio.run(go())
        for _ in range(50):  # the hung handler is cancelled once the client goes away
            if srv.in_flight == 0:
                break
            time.sleep(0.02)
        assert srv.in_flight == 0
        assert srv.faults_count == {"drop": 2, "hang": 1}


def test_sdk_retry_honours_retry_after_and_schedule() -> None:
    with FakeServer(schedule=["429", "429", None, "503"], retry_after=0.2) as srv:
        async def go() -> float:
            async with client(srv, max_retries=3) as c:
                t0 = time.monotonic()
                await c.chat.completions.create(model="m", messages=MSGS)
                return time.monotonic() - t0

        assert asyncio.run(go()) >= 0.4  # two waits of Retry-After 0.2 s
        assert srv.by_status == {429: 2, 200: 1}
        assert srv.stats()["served"] == {f"m|{hash_messages(MSGS)}": 1}


def test_probabilistic_faults_are_seeded() -> None:
    async def statuses(srv: FakeServer) -> list[int]:
        out = []
        async with aiohttp.ClientSession() as s:
            for i in range(200):
                async with s.post(srv.url + "/chat/completions", json=chat_body(str(i))) as r:
                    out.append(r.status)
        return out

    runs = []
    for _ in range(2):
        with FakeServer(faults={"500": 0.2, "429": 0.1}, seed=3) as srv:
            runs.append(asyncio.run(statuses(srv)))
    assert runs[0] == runs[1]
    assert 20 <= runs[0].count(500) <= 65 and 5 <= runs[0].count(429) <= 40
    with pytest.raises(ValueError, match="unknown fault"):
        FakeServer(faults={"418": 1.0})
    assert set(FAULT_KINDS) >= {"429", "drop", "hang", "malformed"}


def test_rpm_limit_sliding_window() -> None:
    with FakeServer(rpm=5, rpm_window=1.0) as srv:
        async def go() -> tuple[list[int], float, int]:
            async with aiohttp.ClientSession() as s:
                codes, wait = [], 0.0
                for i in range(8):
                    async with s.post(srv.url + "/chat/completions", json=chat_body(str(i))) as r:
                        codes.append(r.status)
                        if r.status == 429:
                            wait = float(r.headers["Retry-After"])
                            assert r.headers["x-ratelimit-limit-requests"] == "5"
                await asyncio.sleep(wait + 0.05)
                async with s.post(srv.url + "/chat/completions", json=chat_body("late")) as r:
                    return codes, wait, r.status

        codes, wait, late = asyncio.run(go())
        assert codes == [200] * 5 + [429] * 3
        assert 0 < wait <= 1.0 and late == 200
        assert srv.faults_count["rpm"] == 3


def test_concurrency_counters_and_latency() -> None:
    with FakeServer(latency=0.2) as srv:
        async def go() -> float:
            async with aiohttp.ClientSession() as s:
                async def one(i: int) -> int:
                    async with s.post(srv.url + "/chat/completions", json=chat_body(str(i % 10))) as r:
                        await r.read()
                        return r.status

                t0 = time.monotonic()
                codes = await asyncio.gather(*(one(i) for i in range(40)))
                assert codes == [200] * 40
                return time.monotonic() - t0

        elapsed = asyncio.run(go())
        assert 0.2 <= elapsed < 0.8  # concurrent, not serialised
        st = srv.stats()
        assert st["max_in_flight"] == 40 and st["in_flight"] == 0
        assert st["completions"] == 40 and st["distinct"] == 10 and st["max_seen"] == 4
        srv.reset()
        assert srv.stats()["total"] == 0


def test_embeddings_models_health_stream() -> None:
    with FakeServer(embedding_dim=8, embedding_mode="bag", models=["a", "b"]) as srv:
        srv.set_embedding("pinned", [1.0, 0, 0, 0, 0, 0, 0, 0])

        async def go() -> Any:
            async with client(srv) as c:
                e = await c.embeddings.create(model="e", input=["red apple pie", "red apple", "zebra", "pinned"])
                e2 = await c.embeddings.create(model="e", input="red apple", encoding_format="float")
                models = await c.models.list()
                stream = await c.chat.completions.create(model="m", messages=MSGS, stream=True)
                parts = [ch.choices[0].delta.content or "" async for ch in stream if ch.choices]
                async with aiohttp.ClientSession() as s, s.get(srv.base_url + "/health") as r:
                    health = r.status
                return e, e2, models, "".join(parts), health

        e, e2, models, streamed, health = asyncio.run(go())
        v = [d.embedding for d in e.data]

        def cos(a: list[float], b: list[float]) -> float:
            return sum(x * y for x, y in zip(a, b, strict=True))

        assert all(len(x) == 8 for x in v) and abs(cos(v[0], v[0]) - 1) < 1e-5
        assert cos(v[0], v[1]) > cos(v[0], v[2])  # shared words -> similar vectors
        assert v[3] == [1.0, 0, 0, 0, 0, 0, 0, 0]
        assert max(abs(a - b) for a, b in zip(e2.data[0].embedding, v[1], strict=True)) < 1e-6
        assert [m.id for m in models.data] == ["a", "b"]
        assert streamed == default_responder({"messages": MSGS}) and health == 200


def test_api_key_and_strict_models() -> None:
    with FakeServer(api_key="sk-right", strict_models=True, models=["m"]) as srv:
        async def go() -> None:
            async with client(srv) as bad:
                with pytest.raises(openai.AuthenticationError):
                    await bad.chat.completions.create(model="m", messages=MSGS)
            async with openai.AsyncOpenAI(base_url=srv.url, api_key="sk-right", max_retries=0) as good:
                assert (await good.chat.completions.create(model="m", messages=MSGS)).choices
                with pytest.raises(openai.NotFoundError):
                    await good.chat.completions.create(model="nope", messages=MSGS)

        asyncio.run(go())


def test_subprocess_server() -> None:
    with FakeServerProcess(latency=0.05, schedule=["503"], scripts={"ping": "pong"}) as srv:
        async def go() -> list[int]:
            out = []
            for q in ("ping", "ping"):
                status, _, body = await raw_post(srv.url + "/chat/completions", chat_body(q))
                out.append(status)
                if status == 200:
                    assert json.loads(body)["choices"][0]["message"]["content"] == "pong"
            return out

        assert asyncio.run(go()) == [503, 200]
        st = srv.stats()
        assert st["by_status"] == {"503": 1, "200": 1} and st["faults"] == {"503": 1}
        srv.configure(rpm=1, rpm_window=30)
        codes = [asyncio.run(raw_post(srv.url + "/chat/completions", chat_body(str(i))))[0] for i in range(2)]
        assert codes == [200, 429]
        srv.reset()
        assert srv.stats()["total"] == 0
        port = srv.port
        srv.kill()
        with pytest.raises(aiohttp.ClientConnectionError):
            asyncio.run(raw_post(srv.url + "/chat/completions", chat_body()))
        srv.restart()  # same port, same command line: the schedule replays, /config changes are gone
        codes = [asyncio.run(raw_post(srv.url + "/chat/completions", chat_body(str(i))))[0] for i in range(3)]
        assert srv.port == port and codes == [503, 200, 200]
        proc = srv.proc
    assert proc is not None and proc.poll() is not None  # killed on exit
