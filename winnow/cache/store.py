"""The judgment store: diskcache holding one readable JSON record per judgment.

Why these diskcache settings: the cache is the audit log (architecture.md rule 1), so it
never evicts (``eviction_policy='none'``, no size limit) and a read never rewrites a record
(no LRU bookkeeping on get).  Records are orjson bytes, never pickle, so any SQLite client
can read them.  diskcache commits each ``set`` in SQLite WAL mode, which survives a kill -9
of the writer and lets several processes share one directory.

Hot paths go to diskcache's own ``Cache`` table directly (same connection, same columns,
same WAL commit per record), because diskcache's per-call bookkeeping cost more than the
SQLite work itself (bench/throughput.py, BENCHMARKS.md "Engine throughput"): ``get`` is one
SELECT (~8 us instead of ~34), ``get_many`` one SELECT per 500 keys (~6 us a key), ``put`` one
autocommitted UPSERT (~90 us CPU instead of ~150: one statement instead of BEGIN IMMEDIATE +
SELECT + INSERT + COMMIT).  Only what diskcache itself stores that way is handled directly
(str keys, raw bytes values below ``disk_min_file_size`` kept in the row); anything else
(a big record kept in a file, a non-raw value) goes through diskcache, so diskcache always
reads what winnow wrote and the other way round.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

SCHEMA_VERSION = 1
DEFAULT_DIR = Path("~/.cache/winnow")
BULK_CHUNK = 500  # keys per SELECT ... IN (...); SQLite's default variable limit is 32,766

_MODE_RAW = 1  # diskcache.core.MODE_RAW: bytes kept as they are
# What a cached judge reads of a record (``judges.base.Answer``); ``get_many(slim=True)``
# returns only these.  Every row keeps them, as a JSON array, in diskcache's ``tag`` column
# (unused otherwise: tag_index is off), so a re-run reads ~100 bytes a record instead of
# parsing ~2 KB; ``value`` stays the whole record.  A row without that summary (written by an
# older winnow) gets the same array from SQLite's json_extract, numbers spelled as stored.
SLIM_FIELDS = ("status", "parsed", "error", "key", "parser_version")
_SLIM_OLD = 4  # summaries written before parser_version was kept: the first four fields
_SLIM_EXTRACT = "json_extract(CAST(value AS TEXT), " + ", ".join(f"'$.{f}'" for f in SLIM_FIELDS) + ")"
# A covering index of what a slim look-up reads: the re-run's SELECT touches ~400 index pages
# instead of one ~4 KB table page per record (9,229 keys: ~18 ms instead of ~30).  Built on
# open (IF NOT EXISTS: once per cache, ~30 ms per 10K records); SQLite keeps it in step.
_SLIM_INDEX_NAME = "Cache_winnow_slim"
_SLIM_INDEX = f"CREATE INDEX IF NOT EXISTS {_SLIM_INDEX_NAME} ON Cache(key, raw, expire_time, tag)"
_SELECT_ONE = (
    "SELECT mode, value FROM Cache WHERE key = ? AND raw = 1 AND (expire_time IS NULL OR expire_time > ?)"
)
# The row diskcache's own ``set`` writes for a str key and a small bytes value (eviction
# 'none': access_count 0, no tag, size 0 for in-row values), as one statement.  A row whose
# old value lives in a file is left alone (WHERE) so that diskcache can remove the file.
_UPSERT = (
    "INSERT INTO Cache(key, raw, store_time, expire_time, access_time, access_count, tag, size, mode,"
    " filename, value) VALUES (?, 1, ?, NULL, ?, 0, ?, 0, 1, NULL, ?)"
    " ON CONFLICT(key, raw) DO UPDATE SET store_time = excluded.store_time, expire_time = NULL,"
    " access_time = excluded.access_time, access_count = 0, tag = excluded.tag, size = 0, mode = 1,"
    " filename = NULL, value = excluded.value WHERE Cache.filename IS NULL"
)


class CacheError(RuntimeError):
    """The cache directory cannot be used; the message names the path."""


class NoCacheError(CacheError):
    """A read-only command was pointed at a folder that holds no cache (nothing was created)."""


def holds_cache(directory: str | Path) -> bool:
    """Whether ``directory`` holds a cache (its ``cache.db``), without creating anything."""
    return (Path(directory).expanduser() / "cache.db").is_file()


def default_cache_dir() -> Path:
    env = os.environ.get("WINNOW_CACHE_DIR")
    return Path(env).expanduser() if env else DEFAULT_DIR.expanduser()


class JudgmentCache:
    """Get and put judgment records by key; iterate them for audit."""

    def __init__(self, directory: str | Path | None = None, *, create: bool = True) -> None:
        """Open the cache in ``directory``; ``create=False`` (read-only commands: ``cache stats``,
        ``report``, dry runs) refuses a folder that holds no cache instead of making one there,
        so a mistyped ``--cache-dir`` is named rather than answered with an empty cache."""
        import diskcache

        self.directory = Path(directory).expanduser() if directory else default_cache_dir()
        if not create and not holds_cache(self.directory):
            raise NoCacheError(f"no winnow cache at {self.directory}")
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
            self._min_file_size = int(self._dc.disk_min_file_size)
            self._dc._con.execute(_SLIM_INDEX)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise CacheError(
                f"{db} is not a usable winnow cache ({exc}); move it away or point --cache-dir elsewhere"
            ) from exc

    def get(self, key: str) -> dict[str, Any] | None:
        rows = self._dc._con.execute(_SELECT_ONE, (key, time.time())).fetchall()
        if not rows:
            return None
        mode, value = rows[0]
        if mode == _MODE_RAW and value is not None:
            return self._decode(key, value)
        return self._get_slow(key)

    def get_many(self, keys: Iterable[str], *, slim: bool = False) -> dict[str, dict[str, Any]]:
        """Records of those ``keys`` that are cached, in one SELECT per ``BULK_CHUNK`` keys.

        For the cache-first pass of a re-run: a 9k-row re-run costs ~19 SELECTs instead of 9k.
        ``slim`` returns only ``SLIM_FIELDS`` of each record, from the row's summary: decoding
        whole records (prompt, raw reply, log-probs; ~2 KB each) was a third of a cached
        re-run, and a cached judge reads only these four fields.
        """
        wanted = list(dict.fromkeys(keys))
        found: dict[str, dict[str, Any]] = {}
        now = time.time()
        for start in range(0, len(wanted), BULK_CHUNK):
            chunk = wanted[start:start + BULK_CHUNK]
            if slim:
                try:
                    self._select_slim(chunk, now, found)
                    continue
                except sqlite3.OperationalError:  # an old row's malformed JSON: read whole, name it
                    pass
            self._select_whole(chunk, now, found)
        return found

    def _select(self, columns: str, chunk: list[str], now: float, index: str = "") -> list[Any]:
        """``columns`` of the live rows among ``chunk``'s keys, in one SELECT (``index``: the
        index to read them from; SQLite's planner picks the unique key index otherwise)."""
        marks = ",".join("?" * len(chunk))
        indexed = f" INDEXED BY {index}" if index else ""
        return self._dc._con.execute(
            f"SELECT key, {columns} FROM Cache{indexed} WHERE key IN ({marks}) AND raw = 1"
            " AND (expire_time IS NULL OR expire_time > ?)", (*chunk, now)
        ).fetchall()

    def _select_whole(self, chunk: list[str], now: float, found: dict[str, dict[str, Any]]) -> None:
        for key, mode, value in self._select("mode, value", chunk, now):
            record = self._decode(key, value) if mode == _MODE_RAW and value is not None else self._get_slow(key)
            if record is not None:
                found[key] = record

    def _select_slim(self, chunk: list[str], now: float, found: dict[str, dict[str, Any]]) -> None:
        rows = self._select("tag", chunk, now, _SLIM_INDEX_NAME)  # from the covering index alone
        older = [key for key, fields in rows if type(fields) is not bytes]
        if older:  # rows written before the summary existed: the same array from json_extract
            extracted = dict(self._select(_SLIM_EXTRACT, older, now))
            rows = [(key, fields if type(fields) is bytes else extracted.get(key)) for key, fields in rows]
        try:  # every row with its summary (the rule): one decode for the whole chunk, 3x faster
            if all(type(fields) is bytes for _, fields in rows):
                decoded = orjson.loads(b"[" + b",".join([fields for _, fields in rows]) + b"]")
                batch = {}
                for (key, _), v in zip(rows, decoded, strict=True):  # a count off by one raises
                    if type(v) is not list or not _SLIM_OLD <= len(v) <= len(SLIM_FIELDS):
                        raise ValueError("not a winnow summary")
                    batch[key] = {"status": v[0], "parsed": v[1], "error": v[2], "key": v[3],  # SLIM_FIELDS
                                  "parser_version": v[4] if len(v) > _SLIM_OLD else None}
                found.update(batch)
                return
        except ValueError:  # orjson's JSONDecodeError is one too: row by row below names the culprit
            pass
        for key, fields in rows:
            values = None
            if fields is not None:
                try:
                    values = orjson.loads(fields)
                except orjson.JSONDecodeError:
                    values = None
            if isinstance(values, list) and _SLIM_OLD <= len(values) <= len(SLIM_FIELDS):
                found[key] = dict(zip(SLIM_FIELDS, [*values, None][: len(SLIM_FIELDS)], strict=True))
            else:  # kept in a file without a summary, or not a winnow summary: read it whole
                record = self._get_slow(key)
                if record is not None:
                    found[key] = {name: record.get(name) for name in SLIM_FIELDS}

    def _get_slow(self, key: str) -> dict[str, Any] | None:
        """Through diskcache: a value it keeps in a file, or one stored some other way."""
        raw = self._dc.get(key)
        if raw is None:
            return None
        if not isinstance(raw, bytes | str):
            raise CacheError(f"{self.directory}: record {key} is not a winnow JSON record")
        return self._decode(key, raw)

    def _decode(self, key: str, raw: bytes | str) -> dict[str, Any] | None:
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise CacheError(f"{self.directory}: record {key} is corrupt ({exc})") from exc
        return record if isinstance(record, dict) else None

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Store one record, committed before this returns (one WAL commit, as diskcache's ``set``)."""
        try:
            later = self._upsert(self._dc._con, key, record)
            if later is not None:
                self._dc.set(later[0], later[1], tag=later[2])
        except (sqlite3.Error, OSError) as exc:  # disk full, read-only, locked past the timeout
            raise CacheError(f"cannot write to the cache {self.directory / 'cache.db'}: {exc}") from exc

    def _upsert(self, con: sqlite3.Connection, key: str, record: dict[str, Any]) -> tuple[str, bytes, bytes] | None:
        """Write ``record`` into its row; returns (key, value, summary) instead when diskcache
        must store it (a big record kept in a file, or replacing one kept in a file)."""
        value = orjson.dumps(record)
        summary = _summary(record)
        if len(value) < self._min_file_size:
            now = time.time()
            if con.execute(_UPSERT, (key, now, now, summary, value)).rowcount == 1:
                return None
        return key, value, summary

    def put_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Store several records in one transaction (group commit), committed before this returns.

        The online pass writes the records finished in one event-loop turn together: the
        commit, not the insert, was most of ``put``'s ~100 us.  All or none of them land, and
        each was a call still in flight until then, so a crash loses nothing it had reported.
        """
        if len(items) == 1:
            self.put(*items[0])
            return
        con = self._dc._con
        later: list[tuple[str, bytes, bytes]] = []
        try:
            con.execute("BEGIN IMMEDIATE")
            try:
                for key, record in items:
                    item = self._upsert(con, key, record)
                    if item is not None:
                        later.append(item)
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:  # a failed COMMIT may already have rolled back
                    con.execute("ROLLBACK")
                raise
            for key, value, summary in later:  # big records (files) go through diskcache, as in put
                self._dc.set(key, value, tag=summary)
        except (sqlite3.Error, OSError) as exc:
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


def _summary(record: dict[str, Any]) -> bytes:
    """``SLIM_FIELDS`` of ``record`` as a JSON array (kept in the row's ``tag``)."""
    return orjson.dumps([record.get(name) for name in SLIM_FIELDS])


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

    def get_many(self, keys: Iterable[str], *, slim: bool = False) -> dict[str, dict[str, Any]]:
        return {}

    def put(self, key: str, record: dict[str, Any]) -> None:
        return None

    def put_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        return None

    def keys(self) -> Iterator[str]:
        return iter(())

    def volume(self) -> int:
        return 0

    def close(self) -> None:
        return None
