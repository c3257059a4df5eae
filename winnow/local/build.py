"""How llama.cpp is built for the local judge, and what to say when a build dies on this CPU.

Why a portable build: pip builds llama-cpp-python from source, and llama.cpp's default is
``-march=native``.  On an Intel Xeon VM with AVX-512 and AMX that build crashed (SIGSEGV) on
its first evaluation, while ``GGML_NATIVE=OFF`` with AVX2/FMA/F16C worked; a native wheel is
also cached by pip and reused on whatever CPU the cache later meets.  So winnow's install
commands ask for the portable flags below (README, "The local judge"), and every message about
a crashed server ends with the one command that rebuilds it that way, bypassing pip's cache.
"""

from __future__ import annotations

import platform
import signal

__all__ = ["crash_remedy", "describe_exit", "portable_cmake_args", "rebuild_command"]

# x86-64: every CPU since Haswell / Zen 1 has these; the AVX-512 and AMX paths stay off.
X86_PORTABLE = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
# ARM64 and the rest: llama.cpp's generic baseline (NEON on aarch64), no -mcpu=native.
OTHER_PORTABLE = "-DGGML_NATIVE=OFF"


def portable_cmake_args(machine: str | None = None) -> str:
    """The CMAKE_ARGS of a build that runs on any CPU of this architecture (see module doc)."""
    arch = (machine or platform.machine()).lower()
    return X86_PORTABLE if arch in ("x86_64", "amd64", "x64") else OTHER_PORTABLE


def rebuild_command(machine: str | None = None) -> str:
    """One command that replaces the installed llama-cpp-python with a portable build.

    ``--no-cache-dir`` because pip's wheel cache is keyed by the source archive, not by
    CMAKE_ARGS: without it pip would hand back the very wheel that crashed.
    """
    return (
        f'CMAKE_ARGS="{portable_cmake_args(machine)}" python -m pip install --force-reinstall '
        "--no-cache-dir --no-deps 'llama-cpp-python==" + _installed_version() + "'"
    )


def _installed_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return "0.3.*"


def describe_exit(returncode: int | None) -> str:
    """``exit code 3`` or ``killed by SIGSEGV (signal 11)``: how a server process ended."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name} (signal {-returncode})"
    return f"exit code {returncode}"


CRASH_SIGNALS = {int(signal.SIGSEGV), int(signal.SIGILL), int(signal.SIGBUS), int(signal.SIGFPE), int(signal.SIGABRT)}


def crash_remedy(returncode: int | None) -> str:
    """What the user should do about a server that ended with ``returncode``."""
    if returncode is not None and -returncode in CRASH_SIGNALS:
        return (
            "llama.cpp crashed in native code: the installed build does not run on this CPU (a -march=native "
            "build from another machine or from pip's wheel cache does this). Rebuild it portable:\n"
            f"    {rebuild_command()}"
        )
    if returncode is not None and -returncode == int(signal.SIGKILL):
        return ("the server was killed (SIGKILL: out of memory, or another process); check `dmesg`, lower "
                "WINNOW_LOCAL_N_CTX, then re-run: every judgment finished before it died is cached")
    return "read the server's log above; re-run once it is fixed: every finished judgment is cached"
