"""load() and save(): a file in, normalised Samples out, and rows written back.

Every record ends up either as a Sample or as a BadRow (count in = good + bad); with
``on_bad_row="fail"`` the BadRows become a DataError instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from winnow.data.errors import DataError, LayoutRefused
from winnow.data.ids import id_from_value
from winnow.data.layouts import (
    DETECT_ROWS,
    LAYOUTS,
    MISSING,
    RowError,
    check_column_map,
    detect_layout,
    getter,
    layout_from_map,
    make_converter,
)
from winnow.data.mapping import check_map_paths
from winnow.data.readers import read_raw
from winnow.data.responses import ENDS_UNANSWERED, response_check
from winnow.data.suggest import suggest_map, unread_columns, wrapped_records
from winnow.data.writers import output_format, write_rows
from winnow.gcpause import gc_paused
from winnow.types import BadRow, Sample

OnBadRow = Literal["fail", "skip"]


@dataclass(slots=True)
class Dataset:
    """One loaded file.

    ``rows`` holds every record that is a JSON object / table row, bad ones included, in file
    order (records that are not objects at all, e.g. an unparseable JSONL line, exist only as
    BadRows). ``good_rows`` is what an output of the good rows only should contain.
    """

    path: Path
    format: str
    layout: str
    samples: list[Sample]
    rows: list[dict[str, Any]]
    bad_rows: list[BadRow]
    id_column: str | None = None
    schema: Any = field(default=None, repr=False)  # pyarrow schema of a Parquet input
    # rows that are samples but whose response is empty or missing (an unanswered last user
    # turn): bad rows for judges that read the response (load(need_response=True) drops them)
    unanswered: list[BadRow] = field(default_factory=list)

    @property
    def good_rows(self) -> list[dict[str, Any]]:
        """The original rows of the samples, in file order (the rows that became Samples)."""
        return [sample.row for sample in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)


@gc_paused()  # every object made here stays alive: no cycles to collect (winnow/gcpause.py)
def load(
    path: str | os.PathLike[str],
    *,
    layout: str | None = None,
    column_map: Mapping[str, str] | None = None,
    id_column: str | None = None,
    on_bad_row: OnBadRow = "fail",
    side: str = "chosen",
    need_response: bool | str = False,
) -> Dataset:
    """Read a JSONL / JSON / CSV / TSV / Parquet file (or an HF ``save_to_disk`` directory).

    ``layout`` (one of ``LAYOUTS``: alpaca, sharegpt, messages, prompt, ultrachat, hh,
    preference) overrides detection from the first rows; ``column_map`` renames the fields a
    layout reads (keys: ``MAP_KEYS``; values may be dotted paths such as ``instances.0.input``).
    ``side``: the response a preference pair or HH row is judged on (chosen or rejected).
    ``id_column`` (or ``column_map["id"]``) names a column of unique ids; without one, ids are
    content hashes. ``on_bad_row="fail"`` raises DataError for any bad row; "skip" collects
    them in ``bad_rows``.  ``need_response``: the judges read the response, so a row whose
    response is empty (or whose last user turn is unanswered) is a bad row too; a file where no
    row has a response at all is a prompt pool and is left to the caller to refuse
    (``winnow.api.check_inputs`` names the judges that fit it).
    """
    if on_bad_row not in ("fail", "skip"):
        raise ValueError(f"on_bad_row must be 'fail' or 'skip', got {on_bad_row!r}")
    mapping = dict(column_map or {})
    check_column_map(mapping)
    map_id = mapping.pop("id", None)
    if map_id and id_column and map_id != id_column:
        raise ValueError(f"id column given twice: id_column={id_column!r} and column map id={map_id!r}")
    id_column = id_column or map_id
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")

    p = Path(path)
    name = str(p)
    raw = read_raw(p)
    first = next((v for v in raw.values if isinstance(v, dict)), None)
    entries = {f"column map entry {key}={path}": path for key, path in mapping.items()}
    if id_column:
        entries[f"column map entry id={id_column}" if map_id else f"id column '{id_column}'"] = id_column
    check_map_paths(name, raw.values, entries)
    detected = layout is None and layout_from_map(mapping) is None
    chosen = layout or layout_from_map(mapping) or detect_layout(raw.values)
    if chosen == "alpaca" and layout is None and "output" not in mapping and first is not None \
            and not any("output" in v for v in raw.values[:DETECT_ROWS] if isinstance(v, dict)):
        chosen = "prompt"  # instruction mapped, no responses anywhere: a prompt pool
    if chosen is None and first is not None:
        _refuse_unknown(name, raw.values, first)
    if detected and chosen == "prompt" and first is not None:
        _refuse_unread(name, "prompt", raw.values[:DETECT_ROWS], first, id_column)
    convert = make_converter(chosen or "alpaca", mapping, side, first)
    check = response_check(chosen or "alpaca", mapping, side)
    get_id = getter(id_column) if id_column else None

    samples: list[Sample] = []
    rows: list[dict[str, Any]] = []
    bad: list[BadRow] = []
    unanswered: list[BadRow] = []
    first_seen: dict[str, int] = {}  # user-named id -> record index
    lines = raw.lines
    for index, value in enumerate(raw.values):
        if isinstance(value, BadRow):
            bad.append(value)
            continue
        line = lines[index] if lines is not None else None
        if not isinstance(value, dict):
            bad.append(BadRow(name, index, line, None, f"expected an object, got {_kind(value)}"))
            continue
        rows.append(value)
        try:
            turns, alpaca = convert(value)
            sample_id = None  # a content hash, computed when first asked for (winnow.types.Sample)
            if get_id is not None:
                sample_id = _user_id(get_id(value), id_column or "", index, first_seen, lines)
        except RowError as exc:
            bad.append(BadRow(name, index, line, exc.field, exc.message))
            continue
        sample = Sample(sample_id, turns, value, index, alpaca)
        samples.append(sample)
        problem = check(value, sample) if check is not None else None
        if problem is not None:
            unanswered.append(BadRow(name, index, line, problem.field, problem.message))

    refused = unanswered if need_response != "turns" else [u for u in unanswered if u.message != ENDS_UNANSWERED]
    if need_response and refused and any(s.has_response for s in samples):
        samples, bad = _without_unanswered(samples, bad, refused)
    if bad and on_bad_row == "fail":
        raise DataError.from_bad_rows(bad)
    return Dataset(p, raw.format, chosen or "unknown", samples, rows, bad, id_column, raw.schema, unanswered)


def _without_unanswered(
    samples: list[Sample], bad: list[BadRow], unanswered: list[BadRow]
) -> tuple[list[Sample], list[BadRow]]:
    """The samples less those without a response, which join the bad rows in file order."""
    gone = {b.index for b in unanswered}
    kept = [s for s in samples if s.index not in gone]
    return kept, sorted(bad + unanswered, key=lambda b: b.index)


def _refuse_unknown(name: str, values: list[Any], first: dict[str, Any]) -> None:
    """No layout fits: say how to name one (or how to unwrap records held in one object)."""
    wrapped = wrapped_records(values)
    if wrapped is not None:
        raise LayoutRefused(unwrap_hint(name, *wrapped))
    keys = ", ".join(list(first)[:10]) or "none"
    raise DataError(
        f"{name}: cannot tell the layout from the first rows (keys: {keys}); known layouts: "
        f"{', '.join(LAYOUTS)}. See what winnow reads with `winnow inspect {name}`, then name the "
        "columns, e.g. --map instruction=COL,output=COL (or --map prompt=COL for prompts alone), "
        "or the layout: --layout NAME"
    )


def unwrap_hint(name: str, key: str, count: int) -> str:
    """How to turn ``{"KEY": [records]}`` into a file of rows, spelled out."""
    target = str(Path(name).with_name(f"{Path(name).stem}.{key}.jsonl"))
    return (
        f"{name}: is one JSON object holding {count} records under '{key}', not one record per row; "
        f"winnow reads JSON Lines or a JSON array of rows. Write the records out first, e.g.\n"
        f"  python -c 'import json,sys; [print(json.dumps(r, ensure_ascii=False)) for r in "
        f"json.load(open(sys.argv[1]))[sys.argv[2]]]' {name} {key} > {target}\n"
        f"then run winnow on {target}"
    )


def _refuse_unread(
    name: str, layout: str, rows: list[Any], first: dict[str, Any], id_column: str | None
) -> None:
    """Refuse a detected prompt pool that would leave nested data or response-like text unread.

    Why: Self-Instruct seed tasks look like a prompt pool (``instruction``, no ``output``) and a
    ``question / good / bad`` file too; read that way, the judges would never see the responses,
    and nothing would say so.  Naming the layout (``--layout``) or a ``--map`` says the rest is
    meant to be left unread.  Only the prompt layout is checked: the other layouts read a whole
    exchange, and their extra columns (an Alpaca row's metadata, a chat's tool schemas) are
    metadata the judges are not meant to read."""
    objects = [r for r in rows if isinstance(r, dict)]
    unread = unread_columns(objects, _read_columns(layout, first) + ([id_column] if id_column else []))
    if not unread:
        return
    what = ", ".join(f"'{c}' ({kind})" for c, kind in unread.items())
    suggested = suggest_map(objects)
    fix = f"--map {suggested}" if suggested else "a --map naming the columns to read"
    raise LayoutRefused(
        f"{name}: looks like {layout} rows, but column{'s' if len(unread) > 1 else ''} {what} would be left "
        f"unread and the judges would not see {'them' if len(unread) > 1 else 'it'}. Name what to read, e.g. "
        f"{fix} (`winnow inspect {name} --map ...` shows the result), or --layout {layout} to leave "
        f"{'them' if len(unread) > 1 else 'it'} unread on purpose"
    )


def _read_columns(layout: str, first: dict[str, Any]) -> list[str]:
    """The columns a detected prompt layout reads (with no map)."""
    from winnow.data.shapes import prompt_column

    column = prompt_column(first) or "prompt"
    return [column, "input"] if column.lower() == "instruction" else [column]


def _kind(value: Any) -> str:
    return "null" if value is None else f"a JSON {type(value).__name__}"


def _user_id(value: Any, column: str, index: int, first_seen: dict[str, int], lines: list[int] | None) -> str:
    """The id from the user's id column; a missing, unusable or repeated id is a bad row."""
    sample_id = id_from_value(value)
    if sample_id is None:
        if value is None or value is MISSING:
            raise RowError(column, "missing id")
        raise RowError(column, f"unusable id {value!r} (expected a non-empty string or an integer)")
    earlier = first_seen.get(sample_id)
    if earlier is not None:
        where = f"line {lines[earlier]}" if lines is not None else f"row {earlier + 1}"
        raise RowError(column, f"duplicate id {sample_id!r}, first used on {where}")
    first_seen[sample_id] = index
    return sample_id


def save(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    like: Dataset | None = None,
) -> Path:
    """Write ``rows`` atomically; the format comes from ``format``, the suffix, or ``like``.

    With ``like`` a Parquet input, columns that still exist keep their original Arrow types.
    Returns the path written.
    """
    p = Path(path)
    fmt = output_format(p, format, like.format if like is not None else None)
    schema = like.schema if like is not None and like.format == "parquet" else None
    write_rows(rows, p, fmt, schema)
    return p
