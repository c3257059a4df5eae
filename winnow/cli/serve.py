"""``winnow serve-local``: run the local judge's llama.cpp server in the foreground.

For using one server across several winnow runs (the model loads once) or from other
tools.  ``--model local --api-base URL`` then talks to it under the same cache identity
as a server winnow starts itself, so judgments are shared between the two ways.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import typer

from winnow.cli.app import app, err, fail

DEFAULT_PORT = 8765  # fixed by default so the printed --api-base stays valid across restarts


@app.command("serve-local")
def serve_local(
    gguf: Path | None = typer.Option(None, "--gguf", help="GGUF model file (default: the bundled SmolLM2-135M)."),
    port: int = typer.Option(DEFAULT_PORT, "--port", min=0, max=65535, help="Port on 127.0.0.1; 0 picks a free one."),
    n_ctx: int = typer.Option(4096, "--n-ctx", min=256, help="Context length in tokens."),
    threads: int = typer.Option(0, "--threads", min=0, help="CPU threads; 0: cores minus one (min 1)."),
    verbose: bool = typer.Option(False, "--verbose", help="llama.cpp's own log, in the server log file."),
) -> None:
    """Serve a GGUF model on 127.0.0.1 (OpenAI-compatible) until Ctrl-C."""
    from winnow.local import LocalModelError, LocalServer, LocalSettings, bundled_gguf

    try:
        path = gguf if gguf is not None else bundled_gguf()
    except LocalModelError as exc:
        fail(str(exc))
    if not path.is_file():
        fail(f"GGUF model file not found: {path}")
    settings = LocalSettings(n_ctx=n_ctx, n_threads=threads, verbose=verbose)
    server = LocalServer(path, port=port or None, settings=settings)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        err(f"starting {path.name} on 127.0.0.1:{port or '(free port)'} ...")
        started = time.monotonic()
        server.start()
        err(f"ready in {time.monotonic() - started:.1f}s (model id {server.model_id}; log: {server.log_path})")
        typer.echo(f"--model local --api-base {server.api_base}")
        err(f"  e.g. winnow rate data.jsonl --judge alpagasus --model local --api-base {server.api_base}\n"
            f"  (or any OpenAI client: base URL {server.api_base}, model {server.model_id})\n"
            "Ctrl-C to stop.")
        while server.running:
            time.sleep(0.5)
        err(f"the server exited (code {server.proc.returncode if server.proc else '?'}):\n{server.log_tail()}")
        raise typer.Exit(1)
    except LocalModelError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err("stopping the server ...")
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)
    err("stopped.")
