"""``inspect``: what winnow will read from a file before anything is judged.

The detected layout and why, the columns, the first rows as the judges will see them (turns,
roles, ids), how many rows are valid, which built-in judges can run on them, and, when no
layout is recognised, the ``--map`` that would read the file.  It answers the question behind
every "cannot tell the layout" error, so that error points here.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winnow.data.suggest import suggest_map, wrapped_records

__all__ = ["Inspection", "inspect_file", "suggest_map"]

WHY = {
    "alpaca": "rows have 'instruction' and 'output' (Alpaca)",
    "sharegpt": "rows have a 'conversations' list of {from, value} turns (ShareGPT)",
    "messages": "rows have a 'messages' list of {role, content} turns (OpenAI chat)",
    "prompt": "rows have one text column of a prompt and no response column (a prompt pool)",
    "ultrachat": "rows have a 'data' list of strings, user and assistant alternating (UltraChat)",
    "hh": "rows have 'chosen' and 'rejected' transcripts in '\\n\\nHuman: / \\n\\nAssistant:' form (Anthropic HH)",
    "preference": "rows have 'prompt', 'chosen' and 'rejected' (a preference pair)",
}


@dataclass
class Inspection:
    path: str
    format: str
    records: int
    layout: str | None
    why: str
    columns: list[str]
    valid: int = 0
    bad: list[str] = field(default_factory=list)  # the first bad rows, described
    bad_count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)  # {row, id, turns: [(role, text)]}
    judges_ok: list[str] = field(default_factory=list)
    judges_not: dict[str, str] = field(default_factory=dict)  # judge -> why it cannot run
    suggested_map: str | None = None
    problem: str | None = None  # why the file was not read as it stands (a layout refused, wrapped records)
    map_missing: dict[str, tuple[str, int]] = field(default_factory=dict)  # map key -> (path, rows without it)

    def lines(self) -> list[str]:
        out = [f"{self.path}: {self.format}, {self.records} records"]
        out.append(f"layout: {self.layout or 'not recognised'} ({self.why})")
        out.append(f"columns: {', '.join(self.columns) or '(none)'}")
        if self.problem:
            out.append(f"not read as it stands: {self.problem}")
        if self.suggested_map:
            out.append(f"to read it, try: winnow rate {self.path} --map {self.suggested_map} ...")
        if self.layout is None:
            return out
        bad = f" ({self.bad_count} bad)" if self.bad_count else ""
        out.append(f"valid rows: {self.valid} of {self.records}{bad}")
        for key, (path, missing) in self.map_missing.items():
            empty = " (read as empty)" if key == "input" else ""
            out.append(f"map {key}={path}: missing in {missing} of {self.records} rows{empty}")
        out += [f"  bad: {b}" for b in self.bad]
        for ex in self.examples:
            out.append(f"row {ex['row']} (id {ex['id']}):")
            out += [f"  {role}: {_short(text)}" for role, text in ex["turns"]]
        if self.judges_ok:
            out.append(f"judges that can run: {', '.join(self.judges_ok)}")
        for judge, why in self.judges_not.items():
            out.append(f"cannot run: {judge} ({why})")
        return out


def _short(text: str, width: int = 100) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def inspect_file(
    path: str | os.PathLike[str],
    *,
    layout: str | None = None,
    column_map: Mapping[str, str] | None = None,
    side: str = "chosen",
    examples: int = 3,
) -> Inspection:
    from winnow.data import DataError, load
    from winnow.data.errors import LayoutRefused, MapError
    from winnow.data.layouts import DETECT_ROWS, layout_from_map, row_layout
    from winnow.data.mapping import missing_counts
    from winnow.data.readers import read_raw
    from winnow.judges.registry import BUILTIN, judge_class

    raw = read_raw(Path(path))
    objects = [v for v in raw.values if isinstance(v, dict)]
    columns = list(dict.fromkeys(k for row in objects[:DETECT_ROWS] for k in row))
    name = os.fspath(path)
    votes = Counter(row_layout(row) for row in objects[:DETECT_ROWS])
    if layout:
        why = "named with --layout"
    elif column_map and layout_from_map(column_map):
        why = f"implied by --map {','.join(f'{k}={v}' for k, v in column_map.items())}"
    else:
        seen = sum(votes.values())
        best = next((lay for lay, _ in votes.most_common() if lay is not None), None)
        why = (f"{votes[best]} of the first {seen} rows: {WHY[best]}" if best is not None
               else "no known layout in the first rows")
    result = Inspection(name, raw.format, len(raw.values), None, why, [str(c) for c in columns])
    try:
        dataset = load(path, layout=layout, column_map=column_map, on_bad_row="skip", side=side)
    except MapError:
        raise  # the user's --map is wrong: say so, do not guess another one
    except DataError as exc:
        if isinstance(exc, LayoutRefused):
            result.problem = str(exc)
        if wrapped_records(raw.values) is None:  # records in one object: the problem says how to unwrap them
            result.suggested_map = suggest_map(objects[:DETECT_ROWS])
        return result
    result.layout = dataset.layout
    result.valid = len(dataset.samples)
    result.bad_count = len(dataset.bad_rows)
    result.bad = [b.describe() for b in dataset.bad_rows[:5]]
    for sample in dataset.samples[:examples]:
        result.examples.append({"row": sample.index + 1, "id": sample.id,
                                "turns": [(t.role, t.content) for t in sample.turns]})
    for key, path in (column_map or {}).items():
        missing = missing_counts(raw.values, {key: path})[key]
        if missing:
            result.map_missing[key] = (path, missing)
    _judges(result, dataset, BUILTIN, judge_class)
    return result


def _judges(result: Inspection, dataset: Any, builtin: Any, judge_class: Any) -> None:
    """Which built-in judges can run on the valid rows; rows with an empty response (or an
    unanswered last turn) count as rows without one, as they do when rating."""
    if not dataset.samples:
        return
    empty = {b.index for b in dataset.unanswered}
    with_response = sum(s.has_response and s.index not in empty for s in dataset.samples)
    for judge_name in builtin:
        cls = judge_class(judge_name)
        if not cls.needs_response or with_response == len(dataset.samples):
            result.judges_ok.append(judge_name)
        elif with_response == 0:
            result.judges_not[judge_name] = "needs a response; no row has one"
        else:
            lacking = len(dataset.samples) - with_response
            first = f"; first: {dataset.unanswered[0].describe()}" if dataset.unanswered else ""
            result.judges_not[judge_name] = (f"needs a response; {lacking} rows have none or an empty one "
                                             f"(bad rows when rating){first}")
