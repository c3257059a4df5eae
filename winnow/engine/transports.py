"""Picks the transport for a model: ``auto``, ``fast`` or ``litellm``.

``auto`` sends OpenAI-compatible routes (``openai/...``, ``hosted_vllm/...``, the bundled
``local`` server, which speaks ``/v1/chat/completions``) through the fast transport and
everything else (``anthropic/``, ``vertex_ai/``, ``bedrock/``, bare names whose provider
litellm infers) through litellm.  ``fast`` on a route it cannot express falls back to litellm
rather than failing, so one ``--transport fast`` works for a mixed set of judge models.
"""

from __future__ import annotations

from typing import Any

from winnow.engine.config import ModelConfig

OPENAI_COMPATIBLE_PREFIXES = ("openai/", "hosted_vllm/", "local/")
TRANSPORTS = ("auto", "fast", "litellm")


def is_openai_compatible(cfg: ModelConfig) -> bool:
    return cfg.model.startswith(OPENAI_COMPATIBLE_PREFIXES)


def choose_transport(cfg: ModelConfig) -> str:
    """The transport that carries ``cfg``'s requests (never imports litellm)."""
    if cfg.transport not in TRANSPORTS:
        raise ValueError(f"unknown transport '{cfg.transport}': use auto, fast or litellm")
    if cfg.transport == "litellm":
        return "litellm"
    return "fast" if is_openai_compatible(cfg) and fast_transport_available() else "litellm"


def fast_transport_available() -> bool:
    try:
        import winnow.engine.fast_transport  # noqa: F401
    except ImportError:
        return False
    return True


def make_transport(kind: str, concurrency: int) -> Any:
    if kind == "fast":
        from winnow.engine.fast_transport import FastTransport

        return FastTransport(concurrency=concurrency)
    from winnow.engine.litellm_transport import LitellmTransport

    return LitellmTransport()
