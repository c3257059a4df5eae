"""Picks the transport for a model: ``auto``, ``fast`` or ``litellm``."""

from __future__ import annotations

from typing import Any

from winnow.engine.config import ModelConfig

OPENAI_COMPATIBLE_PREFIXES = ("openai/", "hosted_vllm/", "local/")


def is_openai_compatible(cfg: ModelConfig) -> bool:
    return cfg.model.startswith(OPENAI_COMPATIBLE_PREFIXES)


def choose_transport(cfg: ModelConfig) -> str:
    if cfg.transport in ("fast", "litellm"):
        if cfg.transport == "fast" and not fast_transport_available():
            return "litellm"
        return cfg.transport
    if cfg.transport != "auto":
        raise ValueError(f"unknown transport '{cfg.transport}': use auto, fast or litellm")
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
