"""Checks on a user's column map against the rows it is meant to read.

Why: a mapped path that no row has used to read as "missing" in every row, and for an optional
field (Alpaca's ``input``) that means empty: a typo such as ``instances.0.inptu`` judged every
row without its input and said nothing.  A map entry is a statement about the file, so one that
matches no row is an error that names the entry, the file and the nearest field that exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from winnow.data.errors import MapError
from winnow.data.layouts import MISSING, getter
from winnow.hints import did_you_mean

__all__ = ["check_map_paths", "field_paths", "missing_counts"]

PATH_DEPTH = 3  # how deep field_paths looks into nested values (instances.0.input is depth 3)
PATH_ROWS = 20  # rows whose fields are offered as suggestions


def field_paths(rows: Iterable[Mapping[str, Any]], depth: int = PATH_DEPTH) -> list[str]:
    """Every column and dotted path into nested values of ``rows``, in first-seen order.

    Lists contribute their first element only (``instances.0.input``): that is the path a map
    names, and it keeps the list short enough to print."""
    seen: dict[str, None] = {}
    for row in rows:
        _walk(row, "", depth, seen)
    return list(seen)


def _walk(value: Any, prefix: str, depth: int, seen: dict[str, None]) -> None:
    if depth <= 0:
        return
    if isinstance(value, Mapping):
        items: Iterable[tuple[str, Any]] = ((str(k), v) for k, v in value.items())
    elif isinstance(value, list) and value and prefix:
        items = [("0", value[0])]
    else:
        return
    for key, child in items:
        path = f"{prefix}.{key}" if prefix else key
        seen.setdefault(path, None)
        _walk(child, path, depth - 1, seen)


def _present(rows: list[dict[str, Any]], path: str) -> bool:
    get = getter(path)
    return any(get(row) is not MISSING for row in rows)


def check_map_paths(name: str, rows: list[Any], entries: Mapping[str, str]) -> None:
    """Raise MapError for the first entry whose path is in no row of ``rows``.

    ``entries``: how to name each entry in the message (``column map entry input=inptu``) ->
    its path.  A row found early ends the scan for an entry, so a good map costs a lookup or two."""
    objects = [row for row in rows if isinstance(row, dict)]
    if not objects:
        return
    for label, path in entries.items():
        if not _present(objects, path):
            raise MapError(f"{name}: {label}: no row has the field '{path}'"
                           f"{_suggestion(path, objects[:PATH_ROWS])}")


def _suggestion(path: str, rows: list[dict[str, Any]]) -> str:
    """'; did you mean ...' with the closest existing path, or the columns there are."""
    paths = field_paths(rows)
    hint = did_you_mean(path, paths)
    if hint:
        return hint
    columns = [p for p in paths if "." not in p][:12]
    return f" (columns: {', '.join(columns)})" if columns else ""


def missing_counts(rows: list[Any], mapping: Mapping[str, str]) -> dict[str, int]:
    """For each map entry, how many object rows lack its path (inspect reports them: an
    optional field that is missing reads as empty)."""
    objects = [row for row in rows if isinstance(row, dict)]
    counts = {}
    for key, path in mapping.items():
        get = getter(path)
        counts[key] = sum(get(row) is MISSING for row in objects)
    return counts
