"""Ray for one run: a private Ray on loopback that winnow starts and stops, or a cluster it joins.

Why each setting (measured with Ray 2.60, docs/ray.md):

- ``RAY_USAGE_STATS_ENABLED=0``: no usage reports.
- A local Ray binds its node to 127.0.0.1 (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read when Ray
  is imported: otherwise Ray turns "127.0.0.1" into the machine's routable address).  Joining a
  cluster leaves that alone, so the driver finds its own node by the cluster's address.
- A local Ray gets a random token (``RAY_AUTH_TOKEN``, one per process: Ray caches the first it
  reads) in the environment, and Ray turns token authentication on for it as it does by default:
  Ray would otherwise write a token to ``~/.ray/auth_token`` and reuse it forever.
- Ray's head always starts a usage module that, even with reports off, asks the cloud metadata
  address (169.254.169.254) which cloud it is on unless ``~/ray_bootstrap_config.yaml`` names a
  provider.  While a local Ray starts, ``HOME`` points at a private folder holding such a file
  (provider ``local``); the workers get the user's ``HOME`` back through the runtime env.

Whatever the user set in the environment wins over all of these.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["ray_session"]

_TOKEN = secrets.token_hex(32)
_BOOTSTRAP = "# winnow: a local Ray on loopback, no cloud to ask about\nprovider: {type: local}\n"


@contextmanager
def ray_session(address: str | None, cpus: int) -> Iterator[Any]:
    """The ``ray`` module, connected: to ``address`` (a cluster to join), or to a local Ray on
    loopback with ``cpus`` CPUs, started here and stopped on exit.  A Ray this process already
    initialised is used as it is and left running."""
    before = set(os.environ)

    def default(key: str, value: str) -> None:
        if key not in os.environ:
            os.environ[key] = value

    address = address or os.environ.get("RAY_ADDRESS") or None  # Ray's own way to name a cluster
    local = not address
    default("RAY_USAGE_STATS_ENABLED", "0")
    if local:
        default("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        if "RAY_AUTH_MODE" not in os.environ and "RAY_AUTH_TOKEN" not in os.environ:
            default("RAY_AUTH_TOKEN", _TOKEN)
    try:
        try:
            import ray
            import ray.data
        except ImportError:
            raise RuntimeError("--engine ray needs Ray: pip install 'winnow-llm[ray]'") from None
        if ray.is_initialized():
            yield ray
            return
        quiet: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
        with tempfile.TemporaryDirectory(prefix="winnow-ray-home-") as home:
            if local:
                Path(home, "ray_bootstrap_config.yaml").write_text(_BOOTSTRAP)
                real_home = os.environ.get("HOME") or str(Path.home())
                os.environ["HOME"] = home
                try:
                    ray.init(address="local", num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                             runtime_env={"env_vars": {"HOME": real_home}}, **quiet)
                finally:
                    os.environ["HOME"] = real_home
            else:
                ray.init(address=address, **quiet)
            try:
                yield ray
            finally:
                ray.shutdown()  # stops a local Ray; leaves a joined cluster running
    finally:
        for key in set(os.environ) - before:  # ours, and RAY_AUTH_MODE where Ray set it
            if key.startswith("RAY_"):
                os.environ.pop(key, None)
