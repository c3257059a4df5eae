"""Stable sample ids: a user-named id column, else a content hash of the normalised turns.

The hash covers the turns only (not the row's other columns), so the same conversation gets
the same id whatever file or layout it came from, and annotation columns added by an earlier
run never change it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import orjson

from winnow.types import Turn


def content_id(turns: Sequence[Turn]) -> str:
    """``"h"`` + 16 hex chars of blake2b over the canonical JSON of the turns.

    Canonical JSON: ``[[role, content], ...]`` encoded by orjson (compact, UTF-8, no
    ``ensure_ascii``), which has exactly one encoding for a list of string pairs.
    """
    payload = orjson.dumps([[t.role, t.content] for t in turns])
    return "h" + hashlib.blake2b(payload, digest_size=8).hexdigest()


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
