"""``--model local``: a ModelConfig pointing at a llama.cpp server winnow runs for the run.

The resolved config talks OpenAI-compatible HTTP (``openai/<file name>``), and its cache
identity is ``local:<file name>`` instead of the server's address, whose port changes every
run (see ``ModelConfig.key_api_base``): a re-run is served from the cache.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import FrameType

from winnow.engine.config import ModelConfig
from winnow.local.files import LocalModelError, gguf_for_model, is_local_model
from winnow.local.server import LocalServer, LocalSettings, wait_until_ready

__all__ = ["identity_before_start", "local_model", "local_model_config"]

LOCAL_API_KEY = "local"  # the server checks no key; OpenAI clients insist on one
EXTERNAL_READY_TIMEOUT = 10.0  # seconds to wait for a server given by --api-base


def local_model_config(
    cfg: ModelConfig, model_id: str, api_base: str | None, server: LocalServer | None = None
) -> ModelConfig:
    """``cfg`` aimed at a running local server whose /v1/models reports ``model_id``
    (``api_base`` None: the server is not running yet, see ``identity_before_start``).
    A server winnow started is watched by the engine through ``health``."""
    return replace(
        cfg,
        model=f"openai/{model_id}",
        api_base=api_base,
        api_key=cfg.api_key or LOCAL_API_KEY,
        key_api_base=f"local:{model_id}",
        health=server.death if server is not None else None,
    )


def identity_before_start(cfg: ModelConfig) -> ModelConfig | None:
    """``cfg`` with the cache identity the server winnow would start for it will have, and no
    address yet; None when that identity needs a server first (``--api-base`` names one).

    Why: a run answered from the cache never needs the server, and starting it (loading the
    model) took longer than re-running a fully cached file.  The server announces the GGUF's
    file name (``LocalServer``'s alias), so the identity is known before it runs.
    """
    if not is_local_model(cfg.model) or cfg.api_base:
        return None
    return local_model_config(cfg, gguf_for_model(cfg.model).name, None)


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """While the server runs, SIGTERM unwinds the stack (so ``finally`` stops the server).

    Only from the main thread and only over the default action; the engine installs its own
    handler during its online pass, and the child's death signal covers everything else.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def local_model(cfg: ModelConfig, settings: LocalSettings | None = None) -> Iterator[ModelConfig]:
    """Serve ``cfg.model`` (``local`` or ``local/PATH.gguf``) for the duration of the block.

    With ``cfg.api_base`` set (``--model local --api-base URL``, e.g. a ``winnow serve-local``
    left running) nothing is started: that server is used under the same cache identity.
    Otherwise a server is started on a free loopback port and stopped on leaving the block,
    also on errors, Ctrl-C and SIGTERM.
    """
    if not is_local_model(cfg.model):
        raise ValueError(f"not a local model: '{cfg.model}'")
    if cfg.api_base:
        base = cfg.api_base.rstrip("/")
        try:
            model_id = wait_until_ready(base, None, timeout=EXTERNAL_READY_TIMEOUT)
        except LocalModelError as exc:
            raise LocalModelError(f"--model {cfg.model} --api-base {cfg.api_base}: {exc}") from None
        yield local_model_config(cfg, model_id, base)
        return
    gguf = gguf_for_model(cfg.model)
    with _sigterm_as_exit(), _shared_server(gguf, settings) as server:
        yield local_model_config(cfg, server.model_id or gguf.name, server.api_base, server)


_servers: dict[Path, tuple[LocalServer, int]] = {}
_servers_lock = threading.Lock()


@contextlib.contextmanager
def _shared_server(gguf: Path, settings: LocalSettings | None) -> Iterator[LocalServer]:
    """One server per GGUF file, however many judges of a run use it (reference counted).

    Two judges on ``--model local`` must not load the model twice on a 2-core machine.
    """
    with _servers_lock:
        server, users = _servers.get(gguf, (None, 0))
        if server is None or not server.running:
            server, users = LocalServer(gguf, settings=settings), 0
            server.start()
        _servers[gguf] = (server, users + 1)
    try:
        yield server
    finally:
        with _servers_lock:
            server, users = _servers[gguf]
            if users <= 1:
                del _servers[gguf]
                server.stop()
            else:
                _servers[gguf] = (server, users - 1)
