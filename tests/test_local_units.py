"""The local judge's parts that need no model: request rewrite, file lookup, errors, process life."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from winnow.engine.config import ModelConfig
from winnow.local import (
    EXTRA_INSTALL,
    MODEL_INSTALL,
    LocalModelError,
    MissingExtra,
    files,
    gguf_for_model,
    local_model,
    local_model_config,
)
from winnow.local.compat import JsonSchemaCompat, rewrite_chat_body, rewrite_response_format

SCHEMA = {"type": "object", "properties": {"score": {"type": "number"}}, "required": ["score"]}


def test_openai_json_schema_becomes_llama_cpp_json_object_with_the_same_schema():
    openai_form = {"type": "json_schema", "json_schema": {"name": "judgment", "schema": SCHEMA, "strict": False}}
    assert rewrite_response_format(openai_form) == {"type": "json_object", "schema": SCHEMA}
    assert rewrite_response_format({"type": "json_schema"}) == {"type": "json_object"}
    for unchanged in ({"type": "text"}, {"type": "json_object", "schema": SCHEMA}, None, "x"):
        assert rewrite_response_format(unchanged) == unchanged
    body = json.dumps({"model": "m", "messages": [], "response_format": openai_form, "logprobs": True}).encode()
    out = json.loads(rewrite_chat_body(body))
    assert out["response_format"] == {"type": "json_object", "schema": SCHEMA} and out["logprobs"] is True
    plain = b'{"model": "m", "messages": []}'
    assert rewrite_chat_body(plain) is plain
    assert rewrite_chat_body(b"{not json") == b"{not json"


def test_middleware_rewrites_chunked_chat_bodies_only():
    seen: list[tuple[str, bytes, dict[bytes, bytes]]] = []

    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append((scope["path"], body, dict(scope["headers"])))

    def run(path: str, chunks: list[bytes]) -> None:
        messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in
                    enumerate(chunks)]

        async def receive():
            return messages.pop(0)

        async def send(message):
            pass

        size = str(sum(map(len, chunks))).encode()
        scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"content-length", size)]}
        asyncio.run(JsonSchemaCompat(app)(scope, receive, send))

    body = json.dumps({"response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}}).encode()
    run("/v1/chat/completions", [body[:10], body[10:]])
    _path, received, headers = seen[-1]
    assert json.loads(received)["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert headers[b"content-length"] == str(len(received)).encode()
    run("/v1/completions", [body])
    assert seen[-1][1] == body  # other routes pass through untouched


def test_local_model_names(tmp_path, monkeypatch):
    gguf = tmp_path / "judge.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.chdir(tmp_path)
    assert gguf_for_model("local/judge.gguf") == gguf.resolve()
    assert gguf_for_model(f"local/{gguf}") == gguf.resolve()  # local//abs/path.gguf
    with pytest.raises(LocalModelError, match=r"not found: missing\.gguf \(from --model local/missing\.gguf\)"):
        gguf_for_model("local/missing.gguf")
    with pytest.raises(LocalModelError, match="give the GGUF file"):
        gguf_for_model("local/")
    cfg = local_model_config(ModelConfig("local", transport="fast"), "judge.gguf", "http://127.0.0.1:9/v1")
    assert (cfg.model, cfg.api_base, cfg.cache_api_base, cfg.transport) == (
        "openai/judge.gguf", "http://127.0.0.1:9/v1", "local:judge.gguf", "fast")
    assert cfg.api_key  # OpenAI clients refuse an empty key


def test_missing_extra_names_the_install_commands(monkeypatch):
    monkeypatch.setattr(files, "SERVER_MODULES", ("json", "winnow_no_such_module"))
    with pytest.raises(MissingExtra) as info:
        files.check_server_extra()
    assert EXTRA_INSTALL in str(info.value) and "winnow_no_such_module" in str(info.value)
    monkeypatch.setattr(files, "BUNDLED_PACKAGE", "winnow_no_such_model_package")
    with pytest.raises(MissingExtra) as info:
        files.bundled_gguf()
    assert MODEL_INSTALL in str(info.value) and "local/PATH.gguf" in str(info.value)
    with pytest.raises(MissingExtra), local_model(ModelConfig("local")):
        pass


def test_local_model_with_api_base_reports_an_unreachable_server(monkeypatch):
    from winnow.local import free_port
    from winnow.local import model as local_model_module

    monkeypatch.setattr(local_model_module, "EXTERNAL_READY_TIMEOUT", 1.0)
    port = free_port()
    cfg = ModelConfig("local", api_base=f"http://127.0.0.1:{port}/v1")
    with pytest.raises(LocalModelError, match=f"--api-base http://127.0.0.1:{port}/v1"), \
            local_model(cfg):
        pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_child_dies_with_a_kill_9_parent(tmp_path):
    """A parent spawns a sleeper through winnow.local.process, then is SIGKILLed: no atexit,
    no finally runs, and the kernel's parent-death signal must still end the sleeper."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent("""
        import subprocess, sys, time
        from winnow.local.process import spawn
        child = spawn([sys.executable, "-c", "import time; time.sleep(120)"], subprocess.DEVNULL)
        print(child.pid, flush=True)
        time.sleep(120)
    """))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    assert os.getpgid(child) == child != os.getpgid(parent.pid)  # its own group: Ctrl-C misses it
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_stop_process_terminates_then_kills_the_group(tmp_path):
    from winnow.local.process import live_children, spawn, stop_process

    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); " \
               "time.sleep(60)"
    with open(tmp_path / "log", "wb") as log:
        proc = spawn([sys.executable, "-c", stubborn], log)
        deadline = time.monotonic() + 10
        while b"ready" not in (tmp_path / "log").read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc in live_children()
        started = time.monotonic()
        assert stop_process(proc, grace=0.5) == -signal.SIGKILL  # ignored SIGTERM, so SIGKILL
        assert time.monotonic() - started < 5
        assert proc not in live_children()
        assert stop_process(proc) == -signal.SIGKILL  # idempotent


def test_a_file_that_is_not_gguf_fails_with_the_server_log(tmp_path):
    from tests.localmodel import local_extra_missing
    from winnow.local import LocalServer, LocalSettings

    reason = local_extra_missing()
    if reason:
        pytest.skip(f"local judge extra not installed: {reason}")
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a model\n" * 100)
    server = LocalServer(bogus, settings=LocalSettings(startup_timeout=60))
    with pytest.raises(LocalModelError) as info:
        server.start()
    message = str(info.value)
    assert "did not start" in message and str(bogus) in message and "log (" in message
    assert not server.running
    assert server.log_path is not None and server.log_path.exists()  # kept for the user to read
    server.log_path.unlink()


def test_asking_whether_a_model_is_local_loads_no_server_code() -> None:
    code = ("import sys; from winnow.local.files import is_local_model; is_local_model('local'); "
            "print('winnow.local.server' in sys.modules, 'subprocess' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    from winnow.local import LocalServer, local_model  # still there, loaded on first use

    assert callable(local_model) and LocalServer.__name__ == "LocalServer"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import winnow.local

        winnow.local.nope  # noqa: B018
