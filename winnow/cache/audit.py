"""Read-side helpers over a JudgmentCache: filter, summarise, export, prune.

Why a separate module: ``winnow cache ls/show/stats/export/prune`` and the report all walk
the same records with the same filters, and none of them may know about engines or models
(architecture.md rule 5).  Reading never rewrites a record: ``JudgmentCache.get`` is a plain
SQLite select (no LRU bookkeeping), and nothing here calls ``put``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from winnow.cache.key import KEY_VERSION
from winnow.cache.store import JudgmentCache

__all__ = [
    "RecordFilter",
    "cache_stats",
    "export_records",
    "find_records",
    "iter_records",
    "parse_age",
    "prune",
    "record_time",
]

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s`` -> timedelta; ValueError names the bad text."""
    match = _AGE.match(text or "")
    if not match:
        raise ValueError(f"bad age '{text}': use a number and a unit s, m, h, d or w (e.g. 30d)")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def record_time(record: dict[str, Any]) -> datetime | None:
    """When the judgment was made (``created_at``), timezone-aware; None if missing or bad."""
    value = record.get("created_at")
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


@dataclass(slots=True)
class RecordFilter:
    """Which records a command looks at.  Every set field must match; unset fields match all.

    ``template_hash`` matches the record's judge ``fingerprint`` (the hash of its templates and
    options) by prefix, so the 8 characters ``ls`` shows are enough.  ``older_than`` keeps
    records created before now minus that age (records without a time count as old).
    """

    judge: str | None = None
    model: str | None = None
    status: str | None = None
    sample_id: str | None = None
    template_hash: str | None = None
    older_than: timedelta | None = None
    now: datetime | None = None
    contains: str | None = None  # text in the prompt: finds a row's record whatever id it was cached under

    def is_empty(self) -> bool:
        return not any((self.judge, self.model, self.status, self.sample_id, self.template_hash,
                        self.older_than is not None, self.contains))

    def matches(self, record: dict[str, Any]) -> bool:
        if self.judge and record.get("judge") != _judge_name(self.judge):
            return False
        if self.model and record.get("model") != self.model:
            return False
        if self.status and record.get("status") != self.status:
            return False
        if self.sample_id and str(record.get("sample_id")) != self.sample_id:
            return False
        if self.template_hash and not str(record.get("fingerprint", "")).startswith(self.template_hash):
            return False
        if self.contains and not _prompt_contains(record, self.contains):
            return False
        if self.older_than is not None:
            stamp = record_time(record)
            cutoff = (self.now or datetime.now(UTC)) - self.older_than
            if stamp is not None and stamp >= cutoff:
                return False
        return True


def _prompt_contains(record: dict[str, Any], text: str) -> bool:
    """Whether a message the record sent contains ``text`` (the content, not its JSON spelling)."""
    messages = (record.get("key_parts") or {}).get("messages") or []
    return any(isinstance(m, dict) and text in str(m.get("content") or "") for m in messages)


def _judge_name(name: str) -> str:
    """CLI judge names use dashes (``deita-quality``); records hold the judge's own name."""
    return name.replace("-", "_")


def iter_records(cache: JudgmentCache, flt: RecordFilter | None = None) -> Iterator[dict[str, Any]]:
    """Every record matching ``flt``, in key order of the store."""
    for record in cache.records():
        if flt is None or flt.matches(record):
            yield record


def find_records(cache: JudgmentCache, key_or_id: str) -> list[dict[str, Any]]:
    """A record by its key, or every record of a sample id (a sample has one per call)."""
    if key_or_id.startswith(f"{KEY_VERSION}-"):
        record = cache.get(key_or_id)
        return [record] if record is not None else []
    return sorted(iter_records(cache, RecordFilter(sample_id=key_or_id)),
                  key=lambda r: (str(r.get("judge")), str(r.get("model")), str(r.get("purpose"))))


def _usage(record: dict[str, Any]) -> tuple[int, int]:
    usage = record.get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def cache_stats(cache: JudgmentCache, flt: RecordFilter | None = None) -> dict[str, Any]:
    """Counts by judge, model, fingerprint and status; tokens and money; size on disk."""
    by: dict[str, Counter[str]] = {k: Counter() for k in ("judge", "model", "fingerprint", "status")}
    cost_by_judge_model: Counter[str] = Counter()
    total = prompt = completion = 0
    cost = 0.0
    oldest: datetime | None = None
    newest: datetime | None = None
    for record in iter_records(cache, flt):
        total += 1
        for field, counter in by.items():
            counter[str(record.get(field))] += 1
        p, c = _usage(record)
        prompt += p
        completion += c
        money = float(record.get("cost") or 0.0)
        cost += money
        cost_by_judge_model[f"{record.get('judge')} / {record.get('model')}"] += money  # type: ignore[assignment]
        stamp = record_time(record)
        if stamp is not None:
            oldest = stamp if oldest is None or stamp < oldest else oldest
            newest = stamp if newest is None or stamp > newest else newest
    return {
        "directory": str(cache.directory),
        "records": total,
        "by_judge": dict(by["judge"].most_common()),
        "by_model": dict(by["model"].most_common()),
        "by_fingerprint": dict(by["fingerprint"].most_common()),
        "by_status": dict(by["status"].most_common()),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost": round(cost, 6),
        "cost_by_judge_model": {k: round(v, 6) for k, v in cost_by_judge_model.most_common()},
        "oldest": oldest.isoformat() if oldest else None,
        "newest": newest.isoformat() if newest else None,
        "size_bytes": disk_size(cache.directory),
    }


def disk_size(directory: Path) -> int:
    """Bytes under the cache folder (SQLite file, WAL, value files, run log)."""
    total = 0
    for path in Path(directory).rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            continue  # a WAL file may vanish between listing and stat
    return total


# Nested fields go to Parquet as JSON text: their shapes differ between judges, and one
# Arrow schema cannot hold them all.
_JSON_FIELDS = ("key_parts", "params", "parsed", "reasks", "logprobs", "usage", "error")


def flat_record(record: dict[str, Any]) -> dict[str, Any]:
    """One record as a flat table row (for Parquet and tables)."""
    row: dict[str, Any] = {}
    for name, value in record.items():
        if name in _JSON_FIELDS or isinstance(value, dict | list):
            row[name] = None if value is None else orjson.dumps(value).decode()
        else:
            row[name] = value
    p, c = _usage(record)
    row["prompt_tokens"], row["completion_tokens"] = p, c
    return row


def export_records(records: Iterable[dict[str, Any]], output: str | Path) -> int:
    """Write records to ``.jsonl`` (verbatim) or ``.parquet`` (flat); returns how many."""
    path = Path(output)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".parquet"):
        raise ValueError(f"cannot export to {path}: use a .jsonl or .parquet file name")
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    if suffix == ".jsonl":
        with tmp.open("wb") as fh:
            for record in records:
                fh.write(orjson.dumps(record) + b"\n")
                count += 1
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [flat_record(r) for r in records]
        count = len(rows)
        names = list(dict.fromkeys(name for row in rows for name in row))
        columns = {}
        for name in names:
            values = [row.get(name) for row in rows]
            kinds = {type(v) for v in values if v is not None}
            if kinds <= {int, float} and len(kinds) > 1:  # int and float costs: one float column
                values = [None if v is None else float(v) for v in values]
            elif len(kinds) > 1:  # anything else mixed: text, losing nothing
                values = [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values]
            columns[name] = values
        pq.write_table(pa.table(columns) if rows else pa.table({"key": pa.array([], pa.string())}), tmp)
    tmp.replace(path)
    return count


def prune(cache: JudgmentCache, flt: RecordFilter, *, dry_run: bool = False) -> list[dict[str, Any]]:
    """Delete the records matching ``flt`` (or only list them with ``dry_run``).

    Returns the matching records.  An empty filter is refused: deleting the whole audit log
    must be asked for by removing the folder, not by a forgotten option.
    """
    if flt.is_empty():
        raise ValueError("prune needs a filter (--judge, --model, --status, --template-hash or --older-than)")
    doomed = list(iter_records(cache, flt))
    if not dry_run:
        for record in doomed:
            cache.delete(str(record.get("key")))
    return doomed
