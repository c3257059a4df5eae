"""A stand-in for winnow's local llama.cpp server that crashes on purpose (standard library only).

``python tests/standin_server.py --port N --crash-after K [--alias NAME]`` answers
``GET /v1/models`` like the real server and ``POST /v1/chat/completions`` with a valid AlpaGasus
JSON judgment, until completion number K + 1, on which it reads address 0 (SIGSEGV), as a
llama.cpp build that cannot run on the CPU does on its first evaluation (K = 0: the start-up
smoke test is that completion).  Tests point ``LocalServer.command`` at it.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--crash-after", type=int, default=0)
    parser.add_argument("--alias", default="standin.gguf")
    parser.add_argument("--system-info", default=None, help="the CPU line the real server prints at start")
    args = parser.parse_args()
    served = 0

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *items: object) -> None:
            sys.stdout.write("standin: " + format % items + "\n")
            sys.stdout.flush()

        def _send(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send({"object": "list", "data": [{"id": args.alias, "object": "model"}]})

        def do_POST(self) -> None:
            nonlocal served
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if served >= args.crash_after:
                print(f"standin: completion {served + 1}: crashing with SIGSEGV", flush=True)
                ctypes.string_at(0)  # a real segmentation fault (NULL read), synchronous like llama.cpp's
            served += 1
            content = json.dumps({"score": 4, "explanation": "A correct and complete answer."})
            self._send({
                "id": f"c{served}", "object": "chat.completion", "model": args.alias,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 12, "total_tokens": 22},
            })

    if args.system_info:  # as winnow/local/serve_main.py does, llama.cpp's list of the CPU code it runs
        print(f"winnow local server: standin.gguf on http://127.0.0.1:{args.port}/v1; {args.system_info}", flush=True)
    print(f"standin server on 127.0.0.1:{args.port}, crashing on completion {args.crash_after + 1}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
