"""Read a file into raw records: parsed values in file order, a BadRow where a record is unreadable.

Which layout the records are in is not this module's business (see layouts.py); it only turns
bytes into Python values and records where each one came from, so errors can name the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from winnow.data import tabular
from winnow.data.errors import DataError
from winnow.data.jsonio import MAX_DEPTH, JSONProblem, brackets, dumpable, loads, locate_array_error, too_deep
from winnow.data.raw import RawTable
from winnow.types import BadRow

FORMAT_BY_SUFFIX = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet", ".pq": "parquet",
}  # fmt: skip
FORMATS = ("jsonl", "json", "csv", "tsv", "parquet", "hf")

_UTF8_BOM = b"\xef\xbb\xbf"
_TOO_DEEP = f"value nested more than {MAX_DEPTH} levels deep"


def read_raw(path: Path) -> RawTable:
    """Read ``path`` by its suffix (or by sniffing the content when the suffix is unknown)."""
    name = str(path)
    if path.is_dir():
        if tabular.is_hf_dir(path):
            return tabular.read_hf(path, name)
        raise DataError(f"{name}: is a directory, not a data file (nor a Hugging Face datasets directory)")
    try:
        if path.stat().st_size == 0:
            raise DataError(f"{name}: file is empty")
        fmt = FORMAT_BY_SUFFIX.get(path.suffix.lower())
        if fmt == "parquet":
            return tabular.read_parquet(path, name)
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{name}: no such file") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot read: {exc.strerror or exc}") from None
    data = _strip_bom(data, name)
    if not data or data.isspace():
        raise DataError(f"{name}: file is empty")
    if fmt is None:
        fmt = _sniff(data, name)
        if fmt == "parquet":
            return tabular.read_parquet(path, name)
    if fmt in ("csv", "tsv"):
        return tabular.read_csv(data, name, fmt)
    if fmt == "json":
        return read_json(data, name)
    if data.lstrip()[:1] == b"[":
        return _jsonl_that_is_an_array(data, name)
    return read_jsonl(data, name)


def _strip_bom(data: bytes, name: str) -> bytes:
    """Accept a UTF-8 BOM (Excel writes one) and re-encode BOM-marked UTF-16/32 as UTF-8."""
    if data.startswith(_UTF8_BOM):
        return data[len(_UTF8_BOM) :]
    for bom, codec in (
        (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"),
    ):  # fmt: skip
        if data.startswith(bom):
            try:
                return data.decode(codec).encode("utf-8")
            except UnicodeError as exc:
                message = f"starts with a {codec.upper()} byte-order mark but is not valid {codec}: {exc}"
                raise DataError(f"{name}: {message}") from None
    return data


def _sniff(data: bytes, name: str) -> str:
    if data.startswith(b"PAR1"):
        return "parquet"
    first = data.lstrip()[:1]
    if first == b"[":
        return "json"
    if first == b"{":
        return "jsonl"
    raise DataError(f"{name}: unknown format; name the file .jsonl, .json, .csv, .tsv or .parquet")


def _jsonl_that_is_an_array(data: bytes, name: str) -> RawTable:
    """A .jsonl file holding one JSON array (a pretty-printed export saved under the wrong name)
    is read as that array, as a .json file holding JSON Lines is read as JSON Lines.

    Why: read line by line, every line of it was a bad row ("252 records, 252 bad") and nothing
    said the file was an array.  Only a pretty-printed array (its first line a lone ``[``) is
    taken for one: a JSON Lines file whose first record is an array row still reads line by line."""
    if data.lstrip().split(b"\n", 1)[0].strip() != b"[":
        return read_jsonl(data, name)  # e.g. a first line that is an array row: a bad row, the rest read
    return read_json(data, name)  # a broken array: the error names the element that breaks it


def read_json(data: bytes, name: str) -> RawTable:
    """A JSON array of rows. A .json file that is really JSON Lines is read as JSON Lines."""
    if data.lstrip()[:1] == b"{":
        try:
            doc = loads(data)
        except JSONProblem:
            return read_jsonl(data, name)  # several objects, one per line
        if isinstance(doc, dict) and len(data.strip().splitlines()) == 1:
            return read_jsonl(data, name)  # a one-row JSON Lines file
        wrapped = _wrapped(doc)
        if wrapped is not None:
            from winnow.data.dataset import unwrap_hint

            raise DataError(unwrap_hint(name, *wrapped))
        raise DataError(f"{name}: the top-level JSON value is an object; expected an array of rows or JSONL")
    opening = brackets(data)
    try:
        doc = loads(data, opening)
    except JSONProblem as problem:
        where = locate_array_error(data)
        index = where[0] if where else 0
        line = problem.line if problem.line is not None else (where[1] if where else None)
        bad = BadRow(name, index, line, None, problem.message)
        raise DataError(bad.describe() + " (the file cannot be read past this point)", [bad]) from None
    if not isinstance(doc, list):
        kind = {str: "string", int: "number", float: "number", bool: "boolean"}.get(type(doc), "null")
        raise DataError(f"{name}: the top-level JSON value is a {kind}; expected an array of rows")
    if opening > MAX_DEPTH and not dumpable(doc):
        for i, value in enumerate(doc):
            if isinstance(value, dict | list) and too_deep(value):
                doc[i] = BadRow(name, i, None, None, _TOO_DEEP)
    return RawTable("json", doc)


def _wrapped(doc: Any) -> tuple[str, int] | None:
    from winnow.data.suggest import wrapped_records

    return wrapped_records([doc])


def read_jsonl(data: bytes, name: str) -> RawTable:
    """JSON Lines: one record per non-blank line; a bad line is a BadRow, the rest still load."""
    values: list[Any] = []
    lines: list[int] = []
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        if not raw or raw.isspace():
            continue
        index = len(values)
        lines.append(lineno)
        opening = brackets(raw)
        try:
            value = loads(raw, opening)
        except JSONProblem as problem:
            values.append(BadRow(name, index, lineno, None, problem.message))
            continue
        if opening > MAX_DEPTH and too_deep(value):
            value = BadRow(name, index, lineno, None, _TOO_DEEP)
        values.append(value)
    return RawTable("jsonl", values, lines)
