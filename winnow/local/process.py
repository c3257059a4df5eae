"""Child processes that cannot outlive winnow.

Three layers, because each covers a way of dying the others miss:

1. the child runs in its own session / process group (``start_new_session``), so a Ctrl-C
   on the terminal reaches winnow only, and winnow stops the whole group in order
   (SIGTERM, wait, SIGKILL);
2. an ``atexit`` hook stops every child still registered when the interpreter exits
   (``sys.exit``, an uncaught exception, the end of a script that forgot the context);
3. on Linux the child asks the kernel for SIGKILL when its parent dies
   (``prctl(PR_SET_PDEATHSIG)`` in ``preexec_fn``), which is the only thing that still
   works after ``kill -9`` of winnow or ``os._exit`` (the engine's second Ctrl-C).

Caveat of (3): "parent" is the *thread* that forked.  Start servers from a thread that
lives as long as the server should (the main thread, in winnow's own use).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO, Any

__all__ = ["live_children", "spawn", "stop_process"]

PR_SET_PDEATHSIG = 1
_children: dict[int, subprocess.Popen[bytes]] = {}
_lock = threading.Lock()
_hook_installed = False


def _death_signal_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive SIGKILL when winnow dies (Linux only).

    libc is loaded *before* the fork: between fork and exec the child may only do
    async-signal-safe work, and the hook does two syscalls and no allocation.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    sigkill = int(signal.SIGKILL)

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, sigkill, 0, 0, 0)
        if os.getppid() != parent:  # winnow died before the prctl took effect
            os._exit(1)

    return hook


def _stop_all_at_exit() -> None:
    for proc in live_children():
        stop_process(proc, grace=3.0)


def spawn(argv: Sequence[str], log: IO[bytes], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own process group, tied to this process's life; output goes to ``log``."""
    global _hook_installed
    with _lock:
        if not _hook_installed:
            atexit.register(_stop_all_at_exit)
            _hook_installed = True
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
        preexec_fn=_death_signal_hook(),
        close_fds=True,
    )
    with _lock:
        _children[proc.pid] = proc
    return proc


def live_children() -> list[subprocess.Popen[bytes]]:
    with _lock:
        return [p for p in _children.values() if p.poll() is None]


def _signal_group(proc: subprocess.Popen[Any], sig: int) -> None:
    """Signal the child's whole group (it leads it); fall back to the child alone."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


def stop_process(proc: subprocess.Popen[Any], grace: float = 5.0) -> int | None:
    """SIGTERM the child's group, wait up to ``grace`` seconds, then SIGKILL it.  Idempotent.

    Returns the exit code (negative: killed by that signal).
    """
    try:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)
        # once the leader is reaped its id may be reused: never signal the group after that
    finally:
        with _lock:
            _children.pop(proc.pid, None)
    return proc.returncode
