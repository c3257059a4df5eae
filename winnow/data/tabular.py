"""Readers for CSV/TSV, Parquet and Hugging Face ``save_to_disk`` directories.

CSV cells stay strings exactly as written (no NaN or number conversion): a file written back
without annotations must reproduce its input, and selectors json-decode list columns themselves.
pyarrow and datasets are imported inside the functions so ``import winnow.data`` stays cheap.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from winnow.data.errors import DataError
from winnow.data.raw import RawTable
from winnow.types import BadRow

_FIELD_LIMIT = 2**31 - 1  # the csv module's default (128 KiB) rejects long model outputs
_HF_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def read_csv(data: bytes, name: str, fmt: str) -> RawTable:
    """Read CSV/TSV; invalid UTF-8 is kept as surrogates so the bad cell can be named per row."""
    text = data.decode("utf-8", errors="surrogateescape")
    delimiter = "\t" if fmt == "tsv" else ","
    # strict: a quote left open would otherwise swallow every later line into one cell, silently
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    old_limit = csv.field_size_limit(_FIELD_LIMIT)
    try:
        header = _header(reader, name)
        values: list[Any] = []
        lines: list[int] = []
        while True:
            start = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                lines.append(start)
                values.append(BadRow(name, len(values), start, None, f"malformed {fmt.upper()}: {exc}"))
                continue
            if not fields:
                continue  # a blank line holds no record
            lines.append(start)
            values.append(_row(header, fields, name, len(values), start))
    finally:
        csv.field_size_limit(old_limit)
    return RawTable(fmt, values, lines)


def _header(reader: Any, name: str) -> list[str]:
    try:
        header: list[str] = next(reader)
        while not header:
            header = next(reader)
    except StopIteration:
        raise DataError(f"{name}: file is empty (no header row)") from None
    except csv.Error as exc:
        raise DataError(f"{name}: line {reader.line_num}: malformed header: {exc}") from None
    seen: set[str] = set()
    for column in header:
        if _bad_text(column):
            raise DataError(f"{name}: line {reader.line_num}: invalid UTF-8 in column name {column!r}")
        if column in seen:
            raise DataError(f"{name}: line {reader.line_num}, field '{column}': duplicate column name")
        seen.add(column)
    return header


def _row(header: list[str], fields: list[str], name: str, index: int, line: int) -> dict[str, str] | BadRow:
    if len(fields) != len(header):
        missing = header[len(fields)] if len(fields) < len(header) else None
        message = f"{len(fields)} fields, but the header has {len(header)}"
        return BadRow(name, index, line, missing, message)
    row = dict(zip(header, fields, strict=True))
    for column, value in row.items():
        if _bad_text(value):
            return BadRow(name, index, line, column, "invalid UTF-8")
    return row


def _bad_text(value: str) -> bool:
    """True when a decoded cell holds surrogate escapes, i.e. the file had invalid UTF-8 there."""
    if value.isascii():
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def read_parquet(path: Path, name: str) -> RawTable:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
        values = table.to_pylist()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"{name}: not a readable Parquet file: {exc}") from None
    return RawTable("parquet", values, None, table.schema)


def is_hf_dir(path: Path) -> bool:
    return any((path / marker).is_file() for marker in _HF_MARKERS)


def read_hf(path: Path, name: str) -> RawTable:
    """A directory written by ``datasets.Dataset.save_to_disk`` (needs the optional extra)."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"{name}: is a Hugging Face datasets directory; reading it needs the optional 'datasets' "
            "package: pip install 'winnow-llm[hf]'"
        ) from None
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # the library raises many types; the user needs the file and the reason
        raise DataError(f"{name}: cannot load the Hugging Face dataset: {exc}") from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        hint = f"; load one split, e.g. {path / splits[0]}" if splits else ""
        raise DataError(f"{name}: holds several splits ({', '.join(splits)}){hint}")
    return RawTable("hf", loaded.to_list())
