"""One llama.cpp server on a loopback port: start, wait until it answers, stop.

Defaults are tuned for a small CPU box (2 cores): one thread per available core but one
(two threads on two busy cores measured twice as slow as one: BENCHMARKS.md), a 4096
token context (AlpaGasus and DEITA judge prompts with a long Alpaca row stay well inside
it; SmolLM2 was trained with 8192) and batch 512 for prompt processing.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from winnow.local.build import CRASH_SIGNALS, crash_remedy, describe_exit
from winnow.local.files import LocalModelError, LocalServerDied, check_server_extra
from winnow.local.process import spawn, stop_process

__all__ = ["LocalServer", "LocalSettings", "free_port", "wait_until_ready"]

LOOPBACK = "127.0.0.1"
SMOKE_TIMEOUT = 120.0  # one token: ~0.1 s on SmolLM2, far more for a 70B GGUF on a laptop


@dataclass(slots=True)
class LocalSettings:
    """How the server runs.  ``n_threads=0`` means one per available core but one (at least 1)."""

    n_ctx: int = 4096
    n_threads: int = 0
    n_batch: int = 512
    chat_format: str | None = None
    startup_timeout: float = 180.0
    verbose: bool = False

    @classmethod
    def from_env(cls) -> LocalSettings:
        """Defaults, overridden by ``WINNOW_LOCAL_N_CTX`` / ``_N_THREADS`` / ``_N_BATCH`` / ``_CHAT_FORMAT``.

        The environment is the one knob that reaches a server started deep inside
        ``rate(..., model="local")`` without widening every API signature.
        """
        out = cls()
        for name in ("n_ctx", "n_threads", "n_batch"):
            raw = os.environ.get(f"WINNOW_LOCAL_{name.upper()}")
            if raw:
                try:
                    setattr(out, name, int(raw))
                except ValueError:
                    raise LocalModelError(f"WINNOW_LOCAL_{name.upper()}={raw!r}: expected an integer") from None
        out.chat_format = os.environ.get("WINNOW_LOCAL_CHAT_FORMAT") or None
        return out


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick for 127.0.0.1:0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never via a proxy


def _get_json(url: str, timeout: float) -> object:
    with _NO_PROXY.open(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_until_ready(url: str, proc: subprocess.Popen[bytes] | None, timeout: float) -> str:
    """Poll ``{url}/models`` until it lists a model; return that model's id.

    Gives up when ``proc`` exits or ``timeout`` seconds pass.
    """
    deadline = time.monotonic() + timeout
    delay = 0.05
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LocalModelError(f"the local server ended before answering: {describe_exit(proc.returncode)}")
        try:
            data = _get_json(f"{url}/models", timeout=2.0)
            models = data.get("data") if isinstance(data, dict) else None
            if models:
                return str(models[0].get("id"))
            last_error = f"/models listed no model: {data!r}"[:200]
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last_error = str(exc)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    raise LocalModelError(f"the local server at {url} did not answer within {timeout:g}s ({last_error})")


def _sweep_stale_logs() -> None:
    """Remove logs of earlier winnow processes that died without cleaning up (kill -9)."""
    if not Path("/proc/self").exists():  # liveness is read from /proc: Linux only
        return
    for path in Path(tempfile.gettempdir()).glob("winnow-local-*-*.log"):
        pid = path.name.split("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            with contextlib.suppress(OSError):
                path.unlink()


class LocalServer:
    """llama.cpp's OpenAI-compatible server for one GGUF file, as a child process.

    ``with LocalServer(path) as server: server.api_base`` -> ``http://127.0.0.1:PORT/v1``.
    The child cannot outlive this process (see process.py); ``stop`` is idempotent.
    """

    def __init__(
        self,
        gguf: str | Path,
        port: int | None = None,
        settings: LocalSettings | None = None,
        alias: str | None = None,
    ) -> None:
        self.gguf = Path(gguf)
        self.requested_port = port
        self.port = port or 0
        self.settings = settings or LocalSettings.from_env()
        self.alias = alias or self.gguf.name
        self.model_id: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self._log: IO[bytes] | None = None
        self._stopping = False

    @property
    def api_base(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/v1"

    def command(self) -> list[str]:
        s = self.settings
        argv = [
            sys.executable, "-m", "winnow.local.serve_main", "--gguf", str(self.gguf),
            "--host", LOOPBACK, "--port", str(self.port), "--alias", self.alias,
            "--n-ctx", str(s.n_ctx), "--n-threads", str(s.n_threads), "--n-batch", str(s.n_batch),
        ]
        if s.chat_format:
            argv += ["--chat-format", s.chat_format]
        if s.verbose:
            argv.append("--verbose")
        return argv

    def start(self) -> LocalServer:
        """Start the child and block until it answers; retries a port lost to a race (auto ports only)."""
        check_server_extra()
        if not self.gguf.is_file():
            raise LocalModelError(f"GGUF model file not found: {self.gguf}")
        attempts = 1 if self.requested_port else 3
        for attempt in range(attempts):
            self.port = self.requested_port or free_port()
            try:
                self._start_once()
                self._smoke_test()
                return self
            except LocalServerDied:
                self.stop(keep_log=True)
                raise
            except LocalModelError as exc:
                code = self.proc.poll() if self.proc is not None else None
                if code is not None and -code in CRASH_SIGNALS:
                    error = self._died_error(code, "while loading the model")
                    self.stop(keep_log=True)
                    raise error from None
                tail = self.log_tail()
                self.stop(keep_log=True)
                if attempt + 1 < attempts and "address already in use" in tail.lower():
                    continue
                raise LocalModelError(self._failure_message(tail, str(exc))) from None
            except BaseException:  # Ctrl-C while the model loads: leave nothing behind
                self.stop()
                raise
        raise AssertionError("unreachable")

    def _failure_message(self, tail: str, why: str) -> str:
        return (
            f"the local server for {self.gguf} did not start on port {self.port} ({why}).\n"
            f"  command: {' '.join(self.command())}\n"
            f"  log ({self.log_path}):\n    " + tail.replace("\n", "\n    ")
        )

    def _smoke_test(self) -> None:
        """One one-token completion before any row is judged.

        A build that cannot run on this CPU loads the model and answers ``/models`` fine, then
        dies on its first evaluation: found here, it is reported as that (with the rebuild
        command) instead of as every row failing.
        """
        body = json.dumps({
            "model": self.model_id or self.alias, "max_tokens": 1, "temperature": 0,
            "messages": [{"role": "user", "content": "Say OK."}],
        }).encode()
        request = urllib.request.Request(
            f"{self.api_base}/chat/completions", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with _NO_PROXY.open(request, timeout=SMOKE_TIMEOUT) as response:
                reply = json.loads(response.read())
            if not isinstance(reply, dict) or not reply.get("choices"):
                raise ValueError(f"not a chat completion: {str(reply)[:200]}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            died = self._wait_for_exit(2.0)
            if died is not None:
                raise self._died_error(died, "on its first completion (the start-up smoke test)") from None
            raise LocalModelError(f"the start-up smoke test (a one-token completion) failed: {exc}") from None

    def _wait_for_exit(self, seconds: float) -> int | None:
        """The process's return code if it ends within ``seconds`` (a crash takes a moment to reap)."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None

    def death(self) -> LocalServerDied | None:
        """Why the server is gone, if it ended without being asked to; None while it runs.

        The engine polls this while it judges (``ModelConfig.health``): a dead server stops the
        run at once instead of every row retrying a port nobody listens on.
        """
        if self._stopping or self.proc is None:
            return None
        code = self.proc.poll()
        if code is None:
            return None
        return self._died_error(code, "during the run")

    def _died_error(self, code: int, when: str) -> LocalServerDied:
        self._keep_log()
        remedy = crash_remedy(code, self.log_text())
        if -code in CRASH_SIGNALS and when.startswith("on its first"):
            remedy += "\n    (the smoke test runs before any row is judged: nothing was marked failed)"
        return LocalServerDied(
            f"the local judge's llama.cpp server died {when}: {describe_exit(code)}\n"
            f"  model: {self.gguf}\n"
            f"  server log (kept): {self.log_path}, last lines:\n    "
            + self.log_tail().replace("\n", "\n    ")
            + f"\n  remedy: {remedy}",
            returncode=code,
        )

    def _keep_log(self) -> None:
        """Move the log out of the way of ``_sweep_stale_logs``: a crash's log is the evidence."""
        if self.log_path is None or not self.log_path.exists() or self.log_path.name.startswith("winnow-crash-"):
            return
        kept = self.log_path.with_name(f"winnow-crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log")
        with contextlib.suppress(OSError):
            self.log_path.rename(kept)
            self.log_path = kept

    def _start_once(self) -> None:
        _sweep_stale_logs()
        fd, name = tempfile.mkstemp(prefix=f"winnow-local-{os.getpid()}-", suffix=".log")
        self.log_path = Path(name)
        self._log = os.fdopen(fd, "wb")
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._stopping = False
        self.proc = spawn(self.command(), self._log, env=env)
        self.model_id = wait_until_ready(self.api_base, self.proc, self.settings.startup_timeout)

    def log_text(self) -> str:
        """The server's whole log ('' without one): its first line says which CPU code the build runs."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        text = self.log_text().strip().splitlines()
        return "\n".join(text[-lines:]) or "(empty log)"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, keep_log: bool = False) -> None:
        """Terminate the child's group (SIGTERM, wait, SIGKILL); remove the log unless asked to keep it
        (or the server had died by itself: that log is kept, see ``death``)."""
        if self.proc is not None and self.proc.poll() is not None and not self._stopping:
            keep_log = True
            self._keep_log()
        self._stopping = True
        if self.proc is not None:
            stop_process(self.proc)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.log_path is not None and not keep_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> LocalServer:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
