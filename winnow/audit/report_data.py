"""The numbers behind the HTML report, computed from judged rows and the cache (no HTML here)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from winnow.audit.agreement import bin_labels, bin_scores, scale_for

__all__ = [
    "cache_costs",
    "coverage_curve",
    "failures",
    "histogram",
    "row_identity",
    "score_judges",
    "scores",
    "tag_counts",
]

_CONTENT_FIELDS = ("id", "instruction", "input", "output", "conversations", "messages", "prompt", "response")


def row_identity(row: dict[str, Any]) -> bytes:
    """What makes a row the same row in the pool and in the subset (its content, not its scores)."""
    content = {k: row[k] for k in _CONTENT_FIELDS if k in row}
    return orjson.dumps(content or row, option=orjson.OPT_SORT_KEYS, default=str)


def scores(rows: Iterable[dict[str, Any]], judge: str) -> list[float]:
    """The judge's numeric scores on rows it judged successfully."""
    out = []
    for row in rows:
        value = row.get(f"{judge}_score")
        if (
            row.get(f"{judge}_status", "ok") == "ok"
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            out.append(float(value))
    return out


def score_judges(rows: Sequence[dict[str, Any]], judges: Sequence[str]) -> list[str]:
    """Judges (record names) with a score column in the rows, in the given order."""
    names = [j.replace("-", "_") for j in judges]
    return [j for j in names if any(f"{j}_score" in r for r in rows[:200])]


def histogram(values: Sequence[float], judge: str) -> tuple[list[str], list[int]]:
    scale = scale_for(judge, values)
    labels = bin_labels(scale)
    counts = [0] * len(labels)
    for b in bin_scores(values, scale):
        counts[b] += 1
    return labels, counts


def _tags(row: dict[str, Any], column: str) -> list[str]:
    value = row.get(column)
    return [str(t) for t in value] if isinstance(value, list) else []


def tag_counts(rows: Iterable[dict[str, Any]], column: str = "instag_tags") -> Counter[str]:
    return Counter(t for row in rows for t in set(_tags(row, column)))


def coverage_curve(
    rows: Sequence[dict[str, Any]], vocabulary: set[str], column: str = "instag_tags", points: int = 200
) -> list[tuple[float, float]]:
    """(rows taken, share of ``vocabulary`` covered) as rows are taken in order."""
    if not rows or not vocabulary:
        return []
    seen: set[str] = set()
    step = max(1, len(rows) // points)
    curve = [(0.0, 0.0)]
    for i, row in enumerate(rows, 1):
        seen.update(t for t in _tags(row, column) if t in vocabulary)
        if i % step == 0 or i == len(rows):
            curve.append((float(i), len(seen) / len(vocabulary)))
    return curve


def failures(rows: Iterable[dict[str, Any]], judges: Sequence[str]) -> dict[str, Counter[str]]:
    """Per judge, failed rows counted by reason (the text before the first colon)."""
    out: dict[str, Counter[str]] = {}
    rows = list(rows)
    for judge in (j.replace("-", "_") for j in judges):
        counter: Counter[str] = Counter()
        for row in rows:
            status = row.get(f"{judge}_status")
            if status is not None and status != "ok":
                counter[str(row.get(f"{judge}_error") or status).split(":", 1)[0][:80]] += 1
        out[judge] = counter
    return out


def cache_costs(cache: Any, judges: Sequence[str], sample_ids: Iterable[str] | None = None) -> dict[str, Any]:
    """Tokens, money and provenance per (judge, model) from the cache records of these judges.

    With ``sample_ids`` only the records of those samples count (the rows of this report);
    without, every record of the judges in the cache.
    """
    names = {j.replace("-", "_") for j in judges}
    wanted = set(sample_ids) if sample_ids is not None else None
    groups: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: {
            "calls": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "cost": 0.0,
            "failed": 0,
            "fingerprints": set(),
            "api_bases": set(),
            "versions": set(),
            "latency": 0.0,
        }
    )
    for record in cache.records():
        if record.get("judge") not in names or (wanted is not None and record.get("sample_id") not in wanted):
            continue
        g = groups[(str(record.get("judge")), str(record.get("model")))]
        usage = record.get("usage") or {}
        g["calls"] += 1
        g["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
        g["completion_tokens"] += int(usage.get("completion_tokens") or 0)
        g["cost"] += float(record.get("cost") or 0.0)
        g["failed"] += record.get("status") != "ok"
        g["latency"] += float(record.get("latency_s") or 0.0)
        g["fingerprints"].add(str(record.get("fingerprint")))
        g["api_bases"].add(str(record.get("api_base")))
        g["versions"].add(str(record.get("winnow_version")))
    return {
        f"{j} / {m}": {
            **g,
            "fingerprints": sorted(g["fingerprints"]),
            "api_bases": sorted(g["api_bases"]),
            "versions": sorted(g["versions"]),
        }
        for (j, m), g in sorted(groups.items())
    }
