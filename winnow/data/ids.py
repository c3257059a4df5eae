"""Stable sample ids: a user-named id column, else a content hash of the normalised turns.

The hash covers the turns only (not the row's other columns), so the same conversation gets
the same id whatever file or layout it came from, and annotation columns added by an earlier
run never change it.
"""

from __future__ import annotations

from winnow.types import content_id

__all__ = ["content_id", "id_from_value"]


def id_from_value(value: object) -> str | None:
    """The id a user-named id column holds, or None if the value cannot serve as an id.

    Strings (non-blank) and integers are accepted; integers are written in decimal so that
    a JSON ``7`` and a CSV ``"7"`` name the same sample.
    """
    if isinstance(value, str):
        return value if value.strip() else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
