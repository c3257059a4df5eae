"""The judgment store: diskcache holding one readable JSON record per judgment.

Why these diskcache settings: the cache is the audit log (architecture.md rule 1), so it
never evicts (``eviction_policy='none'``, no size limit) and a read never rewrites a record
(no LRU bookkeeping on get).  Records are orjson bytes, never pickle, so any SQLite client
can read them.  diskcache commits each ``set`` in SQLite WAL mode, which survives a kill -9
of the writer and lets several processes share one directory.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

SCHEMA_VERSION = 1
DEFAULT_DIR = Path("~/.cache/winnow")


class CacheError(RuntimeError):
    """The cache directory cannot be used; the message names the path."""


def default_cache_dir() -> Path:
    env = os.environ.get("WINNOW_CACHE_DIR")
    return Path(env).expanduser() if env else DEFAULT_DIR.expanduser()


class JudgmentCache:
    """Get and put judgment records by key; iterate them for audit."""

    def __init__(self, directory: str | Path | None = None) -> None:
        import diskcache

        self.directory = Path(directory).expanduser() if directory else default_cache_dir()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create cache directory {self.directory}: {exc.strerror}") from exc
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise CacheError(f"cache directory {self.directory} is not writable")
        db = self.directory / "cache.db"
        _refuse_foreign(db)
        try:
            self._dc = diskcache.Cache(
                str(self.directory),
                eviction_policy="none",
                size_limit=2**62,
                cull_limit=0,
                statistics=False,
                tag_index=False,
                timeout=60,
            )
            self._dc.get("__probe__")
        except (sqlite3.DatabaseError, OSError) as exc:
            raise CacheError(
                f"{db} is not a usable winnow cache ({exc}); move it away or point --cache-dir elsewhere"
            ) from exc

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self._dc.get(key)
        if raw is None:
            return None
        if not isinstance(raw, bytes | str):
            raise CacheError(f"{self.directory}: record {key} is not a winnow JSON record")
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise CacheError(f"{self.directory}: record {key} is corrupt ({exc})") from exc
        return record if isinstance(record, dict) else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        try:
            self._dc.set(key, orjson.dumps(record))
        except (sqlite3.Error, OSError) as exc:  # disk full, read-only, locked past the timeout
            raise CacheError(f"cannot write to the cache {self.directory / 'cache.db'}: {exc}") from exc

    def __contains__(self, key: str) -> bool:
        return key in self._dc

    def delete(self, key: str) -> bool:
        return bool(self._dc.delete(key))

    def keys(self) -> Iterator[str]:
        for key in self._dc.iterkeys():
            if isinstance(key, str) and not key.startswith("__"):
                yield key

    def records(self) -> Iterator[dict[str, Any]]:
        for key in self.keys():
            record = self.get(key)
            if record is not None:
                yield record

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())

    def volume(self) -> int:
        return int(self._dc.volume())

    def close(self) -> None:
        self._dc.close()

    def __enter__(self) -> JudgmentCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _refuse_foreign(db: Path) -> None:
    """Refuse a ``cache.db`` that belongs to something else, before diskcache adds its tables to it."""
    if not db.is_file() or db.stat().st_size == 0:
        return
    try:
        con = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise CacheError(
            f"{db} is not a usable winnow cache ({exc}); move it away or point --cache-dir elsewhere"
        ) from exc
    foreign = sorted(tables - {"Settings", "Cache"})
    if foreign:
        raise CacheError(
            f"{db} is another program's database (tables {', '.join(foreign[:5])}), not a winnow cache; "
            "move it away or point --cache-dir elsewhere"
        )


class NullCache(JudgmentCache):
    """``--no-cache``: every lookup misses and nothing is stored."""

    def __init__(self) -> None:
        self.directory = Path(os.devnull)

    def get(self, key: str) -> dict[str, Any] | None:
        return None

    def put(self, key: str, record: dict[str, Any]) -> None:
        return None

    def keys(self) -> Iterator[str]:
        return iter(())

    def volume(self) -> int:
        return 0

    def close(self) -> None:
        return None
