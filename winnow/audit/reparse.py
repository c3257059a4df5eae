"""``reparse``: today's parsers over the replies already in the cache, with no request.

A user who upgrades winnow gets the parser's fixes on every judgment already paid for: each
matching record's stored replies are read again (``winnow.judges.reparse``); a record whose
status or parsed value changes is rewritten with the earlier reading kept in its ``history``,
and every record read is stamped with the current ``parser_version``, so ``rate`` stops
pointing here.  The cache key never changes: the next ``rate`` reads the new values as hits.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winnow.judges.base import PARSER_VERSION, Judge

__all__ = ["ReparseResult", "reparse"]

WRITE_BATCH = 500  # records per transaction


@dataclass
class ReparseResult:
    examined: int = 0
    changed: int = 0  # status or parsed value changed (history kept)
    stamped: int = 0  # same reading, record now carries the current parser_version
    current: int = 0  # already read by this parser: untouched
    transitions: Counter[str] = field(default_factory=Counter)  # "judge_failed -> ok": n
    skipped: Counter[str] = field(default_factory=Counter)  # reason: n
    examples: list[dict[str, Any]] = field(default_factory=list)  # a few changes, for the summary
    dry_run: bool = False
    parser_version: int = PARSER_VERSION

    def lines(self) -> list[str]:
        verb = "would rewrite" if self.dry_run else "rewrote"
        out = [f"re-read {self.examined} records with parser version {self.parser_version} (no request sent): "
               f"{verb} {self.changed} whose reading changed, stamped {self.stamped} that read the same, "
               f"{self.current} already current"]
        out += [f"  {change}: {n}" for change, n in sorted(self.transitions.items())]
        out += [f"  skipped {n}: {reason}" for reason, n in sorted(self.skipped.items())]
        for ex in self.examples:
            out.append(f"  e.g. {ex['key']} ({ex['judge']}): {ex['before']} -> {ex['after']}")
        return out


def _short(status: Any, parsed: Any) -> str:
    if status != "ok" or not isinstance(parsed, dict):
        return str(status)
    shown = {k: v for k, v in parsed.items() if k in ("score", "tags", "method")}
    return f"ok {shown or parsed}"[:120]


def _user_judges(paths: Sequence[str | Path]) -> list[Judge]:
    """Each judge.yaml loaded with every ``structured`` setting (the record's fingerprint picks one)."""
    from winnow.judges.user import load_user_judge

    judges: list[Judge] = []
    for path in paths:
        judges.extend(load_user_judge(Path(path), {"structured": s}) for s in (False, True))
    return judges


def reparse(
    cache_dir: str | Path | None = None,
    *,
    judge: str | None = None,
    model: str | None = None,
    status: str | None = None,
    sample_id: str | None = None,
    template_hash: str | None = None,
    user_judges: Sequence[str | Path] = (),
    dry_run: bool = False,
    examples: int = 5,
) -> ReparseResult:
    """Re-read the matching records of the cache at ``cache_dir`` (filters as ``cache ls``)."""
    from winnow.cache import JudgmentCache
    from winnow.cache.audit import RecordFilter, iter_records
    from winnow.judges.reparse import Unparseable, parser_for, reparse_record

    result = ReparseResult(dry_run=dry_run)
    users = _user_judges(user_judges)
    flt = RecordFilter(judge=judge, model=model, status=status, sample_id=sample_id, template_hash=template_hash)
    pending: list[tuple[str, dict[str, Any]]] = []
    with JudgmentCache(cache_dir, create=False) as cache:  # re-reads what is stored: a missing cache is an error
        for record in list(iter_records(cache, flt)):
            result.examined += 1
            by_name = {u.name: u for u in users if u.fingerprint == record.get("fingerprint")}
            by_name = by_name or {u.name: u for u in users}
            try:
                parse = parser_for(record, by_name)
            except Unparseable as exc:
                result.skipped[str(exc)] += 1
                continue
            new = reparse_record(record, parse)
            if new is None:
                result.current += 1
                continue
            if new.get("history") != record.get("history"):
                result.changed += 1
                result.transitions[f"{record.get('status')} -> {new['status']}"
                                   + (" (new value)" if record.get("status") == new["status"] else "")] += 1
                if len(result.examples) < examples:
                    result.examples.append({"key": record.get("key"), "judge": record.get("judge"),
                                            "before": _short(record.get("status"), record.get("parsed")),
                                            "after": _short(new["status"], new["parsed"])})
            else:
                result.stamped += 1
            if not dry_run:
                pending.append((str(record["key"]), new))
                if len(pending) >= WRITE_BATCH:
                    cache.put_many(pending)
                    pending = []
        if pending:
            cache.put_many(pending)
        if result.examined == 0 and judge is not None:
            _no_such_judge(cache, judge)
    return result


def _no_such_judge(cache: Any, judge: str) -> None:
    """A judge the cache holds no record of is a typo or another cache: say which judges it
    holds (with the closest), rather than "re-read 0 records" and success."""
    from winnow.audit.columns import did_you_mean
    from winnow.cache.audit import iter_records

    held = sorted({str(r.get("judge")) for r in iter_records(cache)})
    wanted = judge.replace("-", "_")
    if wanted in held:
        return  # the judge is there: the other filters matched nothing, which the summary says
    raise ValueError(f"--judge {judge}: the cache holds no record of this judge (judges there: "
                     f"{', '.join(held) or 'none'}){did_you_mean(wanted, held)}")
