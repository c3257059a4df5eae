"""The numbers behind the HTML report, computed from judged rows and the cache (no HTML here)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from winnow.audit.agreement import bin_labels, bin_scores, scale_for

__all__ = [
    "Provenance",
    "cache_costs",
    "coverage_curve",
    "failures",
    "file_records",
    "group_costs",
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


@dataclass
class Provenance:
    """The cache records a judged file's judgments came from, and how they were picked.

    Why: the cache is shared and content-addressed, so the same rows carry records of other
    models, other templates and ``audit stability`` repeats; counting them all made a 200-row
    file report 800 calls and a model that never judged it.
    """

    records: list[dict[str, Any]]
    basis: list[str]  # which filter was applied, in words (shown in the report)
    left_out: Counter[str] = field(default_factory=Counter)  # records of these rows not counted, by why


def file_records(
    cache: Any,
    judges: Sequence[str],
    sample_ids: Sequence[str] | None = None,
    rows: Sequence[dict[str, Any]] | None = None,
    keys: Iterable[str] | None = None,
    source: str | Path | None = None,
) -> Provenance:
    """The records behind the rows: by cache key when known (``keys``, or ``<judge>_keys`` columns
    as in a pipeline's judgments.parquet); otherwise, per judge, the model/template identity whose
    cached judgments agree with the rows' own values, ties broken by the model the cache's run log
    says wrote ``source`` (the judged file).  Stability repeats never count."""
    names = [j.replace("-", "_") for j in judges]
    exact = list(dict.fromkeys([*(keys or ()), *_row_keys(rows or [], names)]))
    if exact:
        return _by_keys(cache, exact)
    wanted = set(sample_ids) if sample_ids is not None else None
    candidates = [r for r in cache.records() if r.get("judge") in names
                  and (wanted is None or str(r.get("sample_id")) in wanted)]
    repeats = _repeat_prints(candidates)
    left_out: Counter[str] = Counter()
    originals = []
    for record in candidates:
        if record.get("fingerprint") in repeats:
            left_out["stability repeats (winnow audit stability)"] += 1
        else:
            originals.append(record)
    if rows is None or sample_ids is None:
        return Provenance(originals, ["every cached judgment of these judges (stability repeats aside)"], left_out)
    chosen: list[dict[str, Any]] = []
    basis: list[str] = []
    logged = _logged_models(cache, source)
    for judge in names:
        mine = [r for r in originals if r.get("judge") == judge]
        winners, text = _best_identities(mine, rows, sample_ids, judge, logged)
        basis.append(text)
        for record in mine:
            if _identity(record) in winners:
                chosen.append(record)
            else:
                left_out[f"{judge} by {record.get('model')}, template {str(record.get('fingerprint'))[:8]}"] += 1
    return Provenance(chosen, basis, left_out)


def _row_keys(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[str]:
    """Cache keys the rows name in ``<judge>_keys`` columns (comma-joined text or a list)."""
    out: list[str] = []
    for row in rows:
        for judge in names:
            value = row.get(f"{judge}_keys")
            if isinstance(value, str):
                out.extend(k for k in value.split(",") if k)
            elif isinstance(value, list):
                out.extend(str(k) for k in value if k)
    return out


def _by_keys(cache: Any, keys: list[str]) -> Provenance:
    found = cache.get_many(keys)
    records = [found[k] for k in keys if k in found]
    basis = [f"the {len(records)} cache records named by the judgments' own cache keys"]
    if len(records) < len(keys):
        basis.append(f"{len(keys) - len(records)} of those keys are no longer in the cache (pruned?)")
    return Provenance(records, basis)


def _repeat_prints(records: Sequence[dict[str, Any]]) -> set[str]:
    """Fingerprints among ``records`` that are stability repeats of another one among them."""
    from winnow.audit.stability import repeat_fingerprints

    prints = {str(r.get("fingerprint")) for r in records}
    temperatures = {None, *((r.get("params") or {}).get("temperature") for r in records)}
    derived: set[str] = set()
    for fingerprint in prints:
        derived |= repeat_fingerprints(fingerprint, temperatures)
    return prints & derived


Identity = tuple[str, str, str]  # (model, api_base, fingerprint): one judge configuration's records


def _identity(record: dict[str, Any]) -> Identity:
    return str(record.get("model")), str(record.get("api_base")), str(record.get("fingerprint"))


def _logged_models(cache: Any, source: str | Path | None) -> set[str]:
    """Models of the latest ``rate`` run the cache's run log records writing ``source`` (by path,
    or by file name where the run gave a relative one); empty when none is logged."""
    from winnow.cache.runs import read_runs

    directory = getattr(cache, "directory", None)
    if source is None or directory is None:
        return set()
    target = Path(source).expanduser()
    for run in reversed(read_runs(directory)):
        output = run.get("output")
        if run.get("command", "rate") != "rate" or not isinstance(output, str):
            continue
        written = Path(output).expanduser()
        same = written.resolve() == target.resolve() if written.is_absolute() else written.name == target.name
        if same:
            return {str(m) for m in run.get("models") or []}
    return set()


def _best_identities(
    records: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]], sample_ids: Sequence[str], judge: str,
    logged: set[str] | None = None,
) -> tuple[set[Identity], str]:
    """The identities whose records agree with the most rows (ties: rows covered, then the models
    the run log says wrote the file), and why, in words."""
    by_identity: dict[Identity, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        by_identity[_identity(record)][str(record.get("sample_id"))].append(record)
    if not by_identity:
        return set(), f"{judge}: no cached judgment of these rows"
    score: dict[Identity, tuple[int, int]] = {}
    for identity, by_sample in by_identity.items():
        agree = sum(1 for row, sid in zip(rows, sample_ids, strict=False)
                    if _consistent(row, judge, by_sample.get(sid, [])))
        score[identity] = (agree, len(by_sample))
    best = max(score.values())
    winners = {i for i, v in score.items() if v == best}
    by_log = {i for i in winners if i[0] in (logged or set())}
    if by_log and by_log != winners:
        winners = by_log
        note = " (the cache's run log names the model that wrote this file)"
    else:
        note = ""
    named = "; ".join(f"{m} at {b}, template {f[:8]}" for m, b, f in sorted(winners))
    text = f"{judge}: {named}, whose cached judgments agree with {best[0]} of {len(rows)} rows{note}"
    if len(winners) > 1:
        text += (f" (the rows agree equally with these {len(winners)} models/templates and the file does not "
                 "say which judged it, so all are counted)")
    return winners, text


def _consistent(row: dict[str, Any], judge: str, records: Sequence[dict[str, Any]]) -> bool:
    """Whether one of ``records`` could have produced the row's ``<judge>_*`` values (status and
    the parsed scalar fields the row carries, such as score and explanation)."""
    status = row.get(f"{judge}_status")
    for record in records:
        if status is not None and (status == "ok") != (record.get("status") == "ok"):
            continue
        parsed = record.get("parsed")
        pairs = [(v, row[f"{judge}_{k}"]) for k, v in (parsed if isinstance(parsed, dict) else {}).items()
                 if f"{judge}_{k}" in row and isinstance(v, str | int | float)]
        if all(_same(a, b) for a, b in pairs):
            return True
    return False


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return a == b


def cache_costs(
    cache: Any,
    judges: Sequence[str],
    sample_ids: Sequence[str] | None = None,
    rows: Sequence[dict[str, Any]] | None = None,
    keys: Iterable[str] | None = None,
    source: str | Path | None = None,
) -> dict[str, Any]:
    """Tokens, money and provenance per (judge, model) of the records ``file_records`` picks."""
    return group_costs(file_records(cache, judges, sample_ids, rows, keys, source).records)


def group_costs(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Tokens, money and provenance per (judge, model) of ``records``."""
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
    for record in records:
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
