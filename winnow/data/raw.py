"""The hand-off between format readers and the loader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class RawTable:
    """Records of one file. ``values[i]`` is record i, or a BadRow when it could not be parsed."""

    format: str
    values: list[Any]
    lines: list[int] | None = None  # 1-based line of each record, for formats with lines
    schema: Any = None  # the pyarrow schema of a Parquet input, so a writer can keep it
