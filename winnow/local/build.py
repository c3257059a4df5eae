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
import re
import signal

__all__ = ["build_cpu_code", "crash_remedy", "describe_exit", "portable_cmake_args", "rebuild_command"]

# x86-64: every CPU since Haswell / Zen 1 has these; the AVX-512 and AMX paths stay off.
X86_PORTABLE = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
# ARM64 and the rest: llama.cpp's generic baseline (NEON on aarch64), no -mcpu=native.
OTHER_PORTABLE = "-DGGML_NATIVE=OFF"


def portable_cmake_args(machine: str | None = None) -> str:
    """The CMAKE_ARGS of a build that runs on any CPU of this architecture (see module doc)."""
    arch = (machine or platform.machine()).lower()
    return X86_PORTABLE if arch in ("x86_64", "amd64", "x64") else OTHER_PORTABLE


def rebuild_command(machine: str | None = None, cmake_args: str | None = None) -> str:
    """One command that replaces the installed llama-cpp-python with a portable build (or ``cmake_args``'s).

    ``--no-cache-dir`` because pip's wheel cache is keyed by the source archive, not by
    CMAKE_ARGS: without it pip would hand back the very wheel that crashed.
    """
    return (
        f'CMAKE_ARGS="{cmake_args or portable_cmake_args(machine)}" python -m pip install --force-reinstall '
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


# llama.cpp's system info (``AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 | ...``), which the server prints
# at start (serve_main), says which CPU code the build runs.  These are the ones past the portable set:
# the AVX-512 and AMX families, and AVX-VNNI (which needs Alder Lake / Zen 4).
_SYSTEM_INFO = re.compile(r"(?:^|\|)\s*CPU\s*:|\bAVX2\s*=\s*[01]|\bSSE3\s*=\s*[01]")
_BEYOND_PORTABLE = re.compile(r"\b((?:AVX512|AMX)\w*|AVX_VNNI)\s*=\s*1\b")


def build_cpu_code(log_text: str) -> list[str] | None:
    """The CPU code past AVX2/FMA/F16C that the server's build runs, from its log; None without the line.

    ``[]`` means a portable build (see module doc); a non-empty list (``["AVX512", "AMX_INT8"]``)
    means a build made for a newer CPU than the portable set, by ``-march=native`` or by hand.
    """
    for line in log_text.splitlines():
        if _SYSTEM_INFO.search(line):
            return list(dict.fromkeys(_BEYOND_PORTABLE.findall(line)))
    return None


CRASH_SIGNALS = {int(signal.SIGSEGV), int(signal.SIGILL), int(signal.SIGBUS), int(signal.SIGFPE), int(signal.SIGABRT)}


def crash_remedy(returncode: int | None, log_text: str = "") -> str:
    """What the user should do about a server that ended with ``returncode``.

    A crash in native code is read against the CPU code the build runs (``build_cpu_code``):
    AVX-512/AMX code is the known mismatch (rebuild portable); a portable build that dies of
    SIGILL is on a CPU older than Haswell/Zen (build natively there); a portable build that dies
    otherwise is not a CPU mismatch winnow knows, and a rebuild would only waste five minutes.
    """
    if returncode is not None and -returncode in CRASH_SIGNALS:
        beyond = build_cpu_code(log_text)
        if beyond:
            return (
                f"llama.cpp crashed in native code, and the installed build runs {', '.join(beyond)} code: it was "
                "built for another CPU (-march=native, here or on the machine whose pip wheel cache it came from). "
                f"Rebuild it portable (AVX2/FMA/F16C only):\n    {rebuild_command()}"
            )
        if beyond is not None and -returncode == int(signal.SIGILL):
            return (
                "llama.cpp hit an instruction this CPU lacks, though the build is portable (AVX2, FMA, F16C): "
                "the CPU is older than Intel Haswell / AMD Zen. Build llama.cpp for this very CPU:\n    "
                + rebuild_command(cmake_args="-DGGML_NATIVE=ON")
            )
        if beyond is not None:
            return (
                "llama.cpp crashed in native code, but the installed build is already portable (no AVX-512 or "
                "AMX code), so this is not the CPU mismatch winnow knows of: read the server's log above "
                "(a damaged model file, a model too big for memory, a llama.cpp bug), check `dmesg`, and re-run "
                "once it is fixed: every judgment finished before it died is cached"
            )
        return (
            "llama.cpp crashed in native code: the installed build does not run on this CPU (a -march=native "
            "build from another machine or from pip's wheel cache does this). Rebuild it portable:\n"
            f"    {rebuild_command()}"
        )
    if returncode is not None and -returncode == int(signal.SIGKILL):
        return ("the server was killed (SIGKILL: out of memory, or another process); check `dmesg`, lower "
                "WINNOW_LOCAL_N_CTX, then re-run: every judgment finished before it died is cached")
    return "read the server's log above; re-run once it is fixed: every finished judgment is cached"
