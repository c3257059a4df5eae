"""The run log: one JSON line per run in ``<cache dir>/runs.jsonl``.

Why: the cache holds judgments, not runs, so "what was the hit rate of the last run" and
"what did yesterday's run cost" need a small journal of their own.  Appends take an
exclusive ``flock`` and write one line in one ``write`` call, so two processes sharing the
folder never interleave; a torn last line (kill -9 mid-write) is skipped when reading.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

__all__ = ["RUNS_FILE", "append_run", "last_run", "read_runs"]

RUNS_FILE = "runs.jsonl"


def append_run(cache_dir: str | Path, stats: dict[str, Any], **info: Any) -> Path:
    """Append ``{"finished_at", **info, "stats": stats}`` to the folder's run log.

    ``info`` is free-form provenance (command, data, judges, models, output); values must be
    JSON-serialisable (paths are written as text).
    """
    path = Path(cache_dir).expanduser() / RUNS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"finished_at": datetime.now(UTC).isoformat(timespec="milliseconds"), **info, "stats": stats}
    line = orjson.dumps(entry, default=str) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - Windows: O_APPEND single write is the guard
            pass
        os.write(fd, line)
    finally:
        os.close(fd)  # closing releases the lock
    return path


def read_runs(cache_dir: str | Path) -> list[dict[str, Any]]:
    """Every complete entry of the run log, oldest first (torn or foreign lines skipped)."""
    path = Path(cache_dir).expanduser() / RUNS_FILE
    if not path.exists():
        return []
    runs = []
    for line in path.read_bytes().splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            runs.append(entry)
    return runs


def last_run(cache_dir: str | Path) -> dict[str, Any] | None:
    runs = read_runs(cache_dir)
    return runs[-1] if runs else None
