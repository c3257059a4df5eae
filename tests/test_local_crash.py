"""A local server that crashes, and a server that is not there: errors at once, not minutes of retries.

Stand-in server (tests/standin_server.py, a real process on a real port) for the deterministic
cases; the real SmolLM2 server killed with SIGSEGV mid-run is in tests/test_local_e2e.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from winnow.api import open_cache, rate
from winnow.cli.app import app
from winnow.engine.config import EngineSettings
from winnow.engine.sending import UNREACHABLE_AFTER, Sender
from winnow.engine.stats import RunStats
from winnow.engine.transport import ChatRequest, TransientError, Unreachable
from winnow.local import LocalServer, LocalServerDied, free_port
from winnow.local.build import build_cpu_code, crash_remedy, describe_exit, portable_cmake_args, rebuild_command
from winnow.types import Reply, Usage

ROOT = Path(__file__).resolve().parents[1]
STANDIN = ROOT / "tests" / "standin_server.py"


@pytest.fixture
def standin(monkeypatch, tmp_path):
    """Point every LocalServer at the stand-in; returns a setter for the completion it crashes on."""
    crash: dict = {"after": 0, "system_info": None}

    def command(self: LocalServer) -> list[str]:
        argv = [sys.executable, str(STANDIN), "--port", str(self.port), "--crash-after", str(crash["after"]),
                "--alias", self.alias]
        return argv + (["--system-info", crash["system_info"]] if crash["system_info"] else [])

    monkeypatch.setattr(LocalServer, "command", command)
    monkeypatch.setattr("winnow.local.server.check_server_extra", lambda: None)  # the stand-in needs no llama_cpp
    gguf = tmp_path / "judge.gguf"
    gguf.write_bytes(b"GGUF stand-in")

    def set_crash(after: int, system_info: str | None = None) -> Path:
        crash["after"], crash["system_info"] = after, system_info
        return gguf

    return set_crash


def _rows(write_jsonl, n: int) -> Path:
    return write_jsonl([{"instruction": f"Add {i} and 1.", "input": "", "output": str(i + 1)} for i in range(n)])


def test_smoke_test_reports_a_build_that_crashes_on_its_first_completion(standin, tmp_path):
    gguf = standin(0)
    server = LocalServer(gguf)
    with pytest.raises(LocalServerDied) as caught:
        server.start()
    message = str(caught.value)
    assert caught.value.returncode == -11
    assert "SIGSEGV" in message and "smoke test" in message and str(gguf) in message
    assert rebuild_command() in message and "--no-cache-dir" in message
    assert "crashing with SIGSEGV" in message  # the log's last lines are in the message
    kept = Path(message.split("server log (kept): ")[1].split(",")[0])
    assert kept.is_file() and "crashing with SIGSEGV" in kept.read_text()
    assert not server.running
    kept.unlink()


NATIVE_SPR = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 | "
              "AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | AMX_INT8 = 1 | LLAMAFILE = 1 | OPENMP = 1 | ")
PORTABLE = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | "


def test_a_crashed_native_build_is_named_by_the_cpu_code_it_runs(standin):
    """The Intel AVX-512/AMX VM's case: the message names the build's AVX-512/AMX code, then the rebuild."""
    server = LocalServer(standin(0, system_info=NATIVE_SPR))
    with pytest.raises(LocalServerDied) as caught:
        server.start()
    message = str(caught.value)
    assert "runs AVX512, AVX512_VBMI, AVX512_VNNI, AVX512_BF16, AMX_INT8 code" in message
    assert rebuild_command() in message
    Path(message.split("server log (kept): ")[1].split(",")[0]).unlink()


def test_a_crashed_portable_build_is_not_sent_to_rebuild(standin):
    """A portable build that dies of SIGSEGV is not the CPU mismatch: a rebuild would waste five minutes."""
    server = LocalServer(standin(0, system_info=PORTABLE))
    with pytest.raises(LocalServerDied) as caught:
        server.start()
    message = str(caught.value)
    assert "SIGSEGV" in message and "already portable" in message and "dmesg" in message
    assert "pip install" not in message
    Path(message.split("server log (kept): ")[1].split(",")[0]).unlink()


def test_crash_remedies_follow_the_build_and_the_signal():
    assert build_cpu_code("x\nwinnow local server: m.gguf; " + NATIVE_SPR + "\nlater") == [
        "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8"]
    assert build_cpu_code(PORTABLE) == []
    assert build_cpu_code("standin: crashing") is None  # no system info line: not known
    assert build_cpu_code("CPU : AVX2 = 1 | AVX512 = 0 | AMX_INT8 = 0 |") == []  # compiled out
    sigill = crash_remedy(-4, PORTABLE)
    assert "older than Intel Haswell" in sigill and 'CMAKE_ARGS="-DGGML_NATIVE=ON"' in sigill
    assert rebuild_command() in crash_remedy(-11, NATIVE_SPR)
    assert rebuild_command() in crash_remedy(-11, "")  # unknown build: the known remedy
    assert "already portable" in crash_remedy(-6, PORTABLE)
    assert "out of memory" in crash_remedy(-9, NATIVE_SPR)  # SIGKILL is not the build's fault
    assert "pip" not in crash_remedy(3, NATIVE_SPR)


def test_rate_on_a_build_that_crashes_at_once_marks_no_row(standin, write_jsonl, tmp_path):
    gguf = standin(0)
    with pytest.raises(LocalServerDied, match="SIGSEGV"):
        rate(_rows(write_jsonl, 5), ["alpagasus"], f"local/{gguf}", cache_dir=tmp_path / "cache")
    with open_cache(tmp_path / "cache") as cache:
        assert len(cache) == 0  # nothing was judged, nothing is cached as failed


def test_server_dying_mid_run_stops_the_run_at_once_and_keeps_every_judgment(standin, write_jsonl, tmp_path):
    gguf = standin(3)  # the smoke test and two judgments, then SIGSEGV on the next completion
    data = _rows(write_jsonl, 40)
    started = time.monotonic()
    with pytest.raises(LocalServerDied) as caught:
        rate(data, ["alpagasus"], f"local/{gguf}", cache_dir=tmp_path / "cache",
             settings=EngineSettings(concurrency=1))
    elapsed = time.monotonic() - started
    assert elapsed < 5.0, f"{elapsed:.1f}s from start to the error (crash detection must take well under 5 s)"
    message = str(caught.value)
    assert "during the run" in message and "SIGSEGV (signal 11)" in message and str(gguf) in message
    with open_cache(tmp_path / "cache") as cache:
        records = list(cache.records())
    assert len(records) == 2 and all(r["status"] == "ok" and r["parsed"]["score"] == 4 for r in records)
    Path(message.split("server log (kept): ")[1].split(",")[0]).unlink()
    # the re-run after the fix resumes from the cache: the two judgments are hits
    gguf = standin(10_000)
    again = rate(data, ["alpagasus"], f"local/{gguf}", cache_dir=tmp_path / "cache",
                 settings=EngineSettings(concurrency=1))
    assert again.stats.cache_hits == 2 and again.stats.calls == 38
    assert all(row["alpagasus_status"] == "ok" for row in again.rows)


def test_cli_exits_1_naming_the_signal(standin, write_jsonl, tmp_path):
    gguf = standin(2)
    result = CliRunner().invoke(app, ["rate", str(_rows(write_jsonl, 10)), "--judge", "alpagasus",
                                      "--model", f"local/{gguf}", "--cache-dir", str(tmp_path / "c"), "-q",
                                      "--concurrency", "1"])
    assert result.exit_code == 1, result.output
    assert "SIGSEGV" in result.output and "re-run the same command" in result.output
    assert "request failed" not in result.output


def test_describe_exit_and_portable_flags():
    assert describe_exit(-11) == "killed by SIGSEGV (signal 11)"
    assert describe_exit(-4) == "killed by SIGILL (signal 4)"
    assert describe_exit(3) == "exit code 3"
    assert portable_cmake_args("x86_64") == "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
    assert portable_cmake_args("aarch64") == "-DGGML_NATIVE=OFF"  # no x86 flags on ARM64
    assert "--force-reinstall --no-cache-dir --no-deps" in rebuild_command("x86_64")


# ------------------------------------------------------------- nothing answers at --api-base
@pytest.mark.parametrize("transport", ["fast", "litellm"])
def test_api_base_where_nothing_listens_ends_in_seconds(transport, write_jsonl, tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "winnow", "rate", str(_rows(write_jsonl, 30)), "--judge", "alpagasus",
         "--model", "openai/judge", "--api-base", url, "--transport", transport, "-q",
         "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr
    assert f"nothing answers at {url}" in proc.stderr
    assert "serve-local" in proc.stderr  # the hint says what to start
    assert elapsed < 15, f"{elapsed:.1f}s"


class _Flaky:
    """A transport whose server answered once, then refuses connections twice, then answers."""

    name = "flaky"

    def __init__(self, script: list[str]) -> None:
        self.script = script

    async def complete(self, request: ChatRequest) -> Reply:
        step = self.script.pop(0)
        if step == "refused":
            raise TransientError("cannot connect", connect_failed=True)
        return Reply(text="ok", usage=Usage(1, 1))


def _send_all(script: list[str], sends: int) -> list[object]:
    sender = Sender(EngineSettings(backoff_initial=0.001, backoff_max=0.002), RunStats())
    transport = _Flaky(script)
    request = ChatRequest(model="openai/m", messages=[], api_base="http://127.0.0.1:9/v1")

    async def go() -> list[object]:
        out: list[object] = []
        for _ in range(sends):
            try:
                out.append((await sender.send(transport, request))[1])
            except Unreachable as exc:
                out.append(exc)
        return out

    return asyncio.run(go())


def test_a_server_that_answered_keeps_retrying_dropped_connections():
    attempts = _send_all(["ok", *["refused"] * (UNREACHABLE_AFTER + 1), "ok"], sends=2)
    assert attempts == [1, UNREACHABLE_AFTER + 2]  # every refused attempt retried, then answered


def test_a_server_that_never_answered_is_unreachable_after_a_few_attempts():
    out = _send_all(["refused"] * 10, sends=1)
    assert isinstance(out[0], Unreachable) and "nothing answers at http://127.0.0.1:9/v1" in str(out[0])


def test_readme_commands_and_ci_build_llama_cpp_portably():
    """The README's two commands and CI install with the portable flags and without pip's cache."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [line for line in readme.splitlines() if "python -m pip install" in line and "-e '.[" in line
                and ("&& winnow run" in line or "&& python -m pytest" in line)]
    assert len(commands) == 2, commands
    for line in commands:
        assert line.startswith(f'CMAKE_ARGS="{portable_cmake_args("x86_64")}" python -m pip install --no-cache-dir')
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == next(line for line in commands if "pytest" in line)  # exactly the README's test command
