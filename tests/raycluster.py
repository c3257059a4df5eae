"""A two-node Ray cluster on loopback, for the ``--engine ray`` tests (issue 18).

``ray start --head`` on 127.0.0.2 and a second ``ray start`` joining it on 127.0.0.3, each with
its own temp dir and CPUs: two nodes on one machine.  Why those addresses: Ray turns
"127.0.0.1" and "localhost" into the machine's routable address (``resolve_ip_for_localhost``),
but leaves the rest of 127.0.0.0/8 alone, which Linux routes to loopback.  Everything else the
cluster could reach beyond loopback is off: usage stats, and the cloud metadata probe of the
head's usage module (a ``~/ray_bootstrap_config.yaml`` naming a local provider, in a private
``HOME``).  A random token guards it.  Every process either node started is killed on exit:
each ``ray start`` runs in its own session, whose processes are found by session id.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoopbackCluster:
    def __init__(self, cpus_per_node: int = 1) -> None:
        self.cpus = cpus_per_node
        # short: Ray's socket paths live under the temp dir (108 bytes at most)
        self.root = Path(tempfile.mkdtemp(prefix="wr-"))
        self.port = _free_port()
        self.address = f"{HEAD_IP}:{self.port}"
        home = self.root / "home"
        home.mkdir()
        (home / "ray_bootstrap_config.yaml").write_text("provider: {type: local}\n")
        self.env = dict(os.environ, HOME=str(home), RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
                        RAY_AUTH_TOKEN=secrets.token_hex(32))
        self.driver_env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
                               RAY_AUTH_TOKEN=self.env["RAY_AUTH_TOKEN"])
        self.sessions: list[int] = []

    def _start(self, *args: str) -> None:
        ray = str(Path(sys.executable).parent / "ray")
        proc = subprocess.Popen([ray, "start", *args, "--num-cpus", str(self.cpus), "--disable-usage-stats"],
                                env=self.env, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        self.sessions.append(proc.pid)
        out, _ = proc.communicate(timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start {' '.join(args)} failed:\n{out.decode()[-3000:]}")

    def __enter__(self) -> LoopbackCluster:
        try:
            self._start("--head", "--node-ip-address", HEAD_IP, "--port", str(self.port),
                        "--temp-dir", str(self.root / "head"), "--include-dashboard=false")
            self._start("--address", self.address, "--node-ip-address", WORKER_IP,
                        "--temp-dir", str(self.root / "worker"))
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def processes(self) -> list[int]:
        """Every live process of the sessions the two ``ray start`` commands opened."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getsid(int(entry.name)) in self.sessions:
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def worker_logs(self, node: str) -> str:
        """The text of every worker log of one node ("head" or "worker")."""
        return "".join(p.read_text(errors="replace") for p in (self.root / node).glob("session_*/logs/worker-*.out"))

    def stop(self) -> None:
        for _ in range(50):
            alive = self.processes()
            if not alive:
                break
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)
