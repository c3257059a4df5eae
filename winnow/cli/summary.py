"""The end-of-run summary printed by ``rate`` and ``run``."""

from __future__ import annotations

from collections import Counter
from typing import Any

from winnow.cli.app import err


def print_summary(result: Any) -> None:
    stats = result.stats
    s = stats.as_dict()
    lines = [f"rated {len(result.rows)} rows with {', '.join(result.judges)}"]
    sides = ("chosen_", "rejected_") if result.rows and f"chosen_{result.judges[0]}_status" in result.rows[0] else ("",)
    for judge in result.judges:
        for side in sides:  # --side both: each side's columns have their own prefix
            statuses = Counter(row.get(f"{side}{judge}_status") for row in result.rows)
            lines.append(f"  {side}{judge}: {statuses.get('ok', 0)} ok, {statuses.get('judge_failed', 0)} judge_failed")
    lines.append(
        f"  judgments: {s['cache_hits']} from cache, {s['calls']} new ({s['requests']} requests, "
        f"{s['retries']} retries, {s['reasks']} re-asks); hit rate {100 * stats.hit_rate:.1f}%"
    )
    lines.append(
        f"  tokens: {s['prompt_tokens']} in, {s['completion_tokens']} out; cost ${stats.cost:.4f}; "
        f"{stats.elapsed:.1f}s"
    )
    if stats.old_parser_hits:
        lines.append(f"  note: {stats.old_parser_hits} cached judgments were read by an older parser than this "
                     "winnow's; `winnow reparse` re-reads their stored replies, with no request")
    if s["transports"]:
        lines.append("  transport: " + ", ".join(f"{k} ({v} calls)" for k, v in s["transports"].items()))
    if s["failure_reasons"]:
        lines.append("  failures: " + "; ".join(f"{k} x{v}" for k, v in s["failure_reasons"].items()))
    if result.bad_rows:
        lines.append(f"  skipped {len(result.bad_rows)} bad rows:")
        for bad in result.bad_rows[:20]:
            lines.append(f"    {bad.describe()}")
        if len(result.bad_rows) > 20:
            lines.append(f"    ... and {len(result.bad_rows) - 20} more")
    for note in getattr(result, "notes", None) or []:
        lines.append(f"  note: {note}")
    if result.output is not None:
        lines.append(f"  wrote {result.output}")
    if getattr(result, "evol_labels", None) is not None:
        lines.append(f"  wrote {result.evol_labels} (DEITA evol: (variant, score) labels to train a scorer)")
    err("\n".join(lines))


def nothing_judged(result: Any) -> bool:
    """True when the run had rows and not one of them got a judgment from any judge.

    Then ``rate`` and ``run`` exit 1: a script must not take a file of ``judge_failed`` rows
    (every request failed after its retries, every reply unreadable) for a finished job.
    """
    if not result.rows or result.stats.rows_failed == 0:
        return False
    prefixes = ("", "chosen_", "rejected_")
    return not any(row.get(f"{p}{judge}_status") == "ok"
                   for row in result.rows for judge in result.judges for p in prefixes)
