"""The server process: ``python -m winnow.local.serve_main --gguf PATH --port N``.

It is llama-cpp-python's own OpenAI-compatible app (``llama_cpp.server.app.create_app``,
what ``python -m llama_cpp.server`` runs) behind ``JsonSchemaCompat`` (see compat.py), on
127.0.0.1 only.  winnow never imports this module itself: it runs in the child process.
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m winnow.local.serve_main")
    parser.add_argument("--gguf", required=True, help="GGUF model file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--alias", default=None, help="model id reported by /v1/models (default: file name)")
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--n-threads", type=int, default=0, help="0: one per available core but one")
    parser.add_argument("--n-batch", type=int, default=512)
    parser.add_argument("--chat-format", default=None, help="default: the GGUF's own chat template")
    parser.add_argument("--verbose", action="store_true", help="llama.cpp's own logging")
    return parser.parse_args(argv)


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """One thread per core but one, at least one.

    Measured on the 2-core box (BENCHMARKS.md, Local judge): llama.cpp's threads spin at a
    barrier, so two threads on two busy cores ran AlpaGasus at *half* the speed of one.
    Leaving a core to winnow and everything else is the robust default.
    """
    return max(1, available_cores() - 1)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("winnow's local server listens on loopback only (127.0.0.1)")
    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    from winnow.local.compat import JsonSchemaCompat

    threads = args.n_threads or default_threads()
    model_settings = ModelSettings(
        model=args.gguf,
        model_alias=args.alias or os.path.basename(args.gguf),
        n_ctx=args.n_ctx,
        n_batch=args.n_batch,
        n_threads=threads,
        n_threads_batch=threads,
        chat_format=args.chat_format,
        logits_all=True,  # needed for logprobs/top_logprobs (DEITA's expectation scores)
        verbose=args.verbose,
    )
    server_settings = ServerSettings(host=args.host, port=args.port)
    app = create_app(server_settings=server_settings, model_settings=[model_settings])
    import llama_cpp

    # which CPU code this build runs (AVX2, AVX512...): the first thing to read in a crash's log
    system_info = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    print(f"winnow local server: {args.gguf} on http://{args.host}:{args.port}/v1 "
          f"(n_ctx={args.n_ctx}, threads={threads}); llama-cpp-python {llama_cpp.__version__}: {system_info}",
          flush=True)
    uvicorn.run(
        JsonSchemaCompat(app),
        host=args.host,
        port=args.port,
        log_level="info" if args.verbose else "warning",
        timeout_graceful_shutdown=3,
    )


if __name__ == "__main__":
    main()
