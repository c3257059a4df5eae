"""Write rows to JSONL / JSON / CSV / TSV / Parquet, atomically.

Rows are written as given: key order kept, non-ASCII kept (no ``ensure_ascii``), CSV cells that
are strings written verbatim, so rows read by winnow and written back unchanged reproduce the
input. Every write goes to a temp file in the target directory, is fsynced, then os.replace()d
over the target: a crash leaves either the old file or the complete new one, never a truncated
file that looks finished.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from winnow.data.errors import DataError
from winnow.data.readers import FORMAT_BY_SUFFIX

WRITABLE = ("jsonl", "json", "csv", "tsv", "parquet")
_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS

Row = Mapping[str, Any]


class OutputError(OSError):
    """An output that could not be written, as one line: ``cannot write PATH: reason``.

    Why its own type: the CLI turns it into ``error: ...`` (exit 2) instead of a traceback, and
    can tell it from an unreadable *input*.  It stays an OSError so callers that already catch
    OSError around a write keep working."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot write {path}: {reason}")
        self.path = path


def _reason(exc: OSError) -> str:
    """``Is a directory`` rather than ``[Errno 21] Is a directory: '/tmp/.x.tmp' -> 'x'``: the
    temp file's name means nothing to the user."""
    return exc.strerror or str(exc)


def check_writable(path: Path) -> None:
    """Refuse, before any work, an output that cannot be written: its folder is missing (never
    created: a typo in a folder name should not silently make a new tree), is a file, or is
    read-only; or the path is a folder or a read-only file.  Raises ``OutputError``.

    Why beside ``winnow.api.preflight_output``: that one also checks the data suffix, which an
    HTML report or a cache export does not have; the CLI runs both for data outputs."""
    parent = path.absolute().parent
    if not parent.exists():
        raise OutputError(path, f"folder {parent} does not exist (create it first)")
    if not parent.is_dir():
        raise OutputError(path, f"{_first_file(parent)} is a file, not a folder")
    if path.is_dir():
        raise OutputError(path, "it is a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(path, "the file is read-only")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(path, f"folder {parent} is read-only")


def _first_file(folder: Path) -> Path:
    """The part of ``folder`` that exists but is not a folder (``a.txt`` in ``a.txt/b/c``)."""
    for candidate in [folder, *folder.parents][::-1]:
        if candidate.exists() and not candidate.is_dir():
            return candidate
    return folder


def check_output_suffix(path: Path) -> None:
    """Refuse an output name whose suffix names no format we write (``x.xlsx``, ``x.jsonl.gz``).

    Why: such a name used to get the input's format under the wrong suffix (JSON text in a
    ``.xlsx``, uncompressed text in a ``.gz``), silently.  A name without a suffix still means
    "the input's format".  Callers that judge rows call this before the first request, so a
    typo costs nothing."""
    suffix = path.suffix.lower()
    if suffix and suffix not in FORMAT_BY_SUFFIX:
        known = ", ".join(sorted(dict.fromkeys(FORMAT_BY_SUFFIX)))
        compressed = " (compressed output is not supported)" if suffix in _COMPRESSED else ""
        raise DataError(f"{path}: cannot write a '{suffix}' file{compressed}; name the output with one of: {known}")


_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")


def output_format(path: Path, format: str | None = None, like_format: str | None = None) -> str:
    """Explicit format, else the suffix, else (no suffix at all) the input's format."""
    if format is None:
        check_output_suffix(path)
    fmt = format or FORMAT_BY_SUFFIX.get(path.suffix.lower()) or like_format
    if fmt not in WRITABLE:
        why = ("cannot tell which format to write" if fmt is None
               else f"no format to write it in (the input is {fmt!r}, which winnow reads but does not write)")
        raise DataError(f"{path}: {why}; name the output .jsonl, .json, .csv, .tsv or .parquet")
    return fmt


def write_rows(rows: Sequence[Row], path: Path, fmt: str, schema: Any = None) -> None:
    """Serialise ``rows`` in ``fmt`` and put them at ``path`` atomically."""
    name = str(path)
    if fmt == "parquet":
        table = _arrow_table(rows, name, schema)

        def write_parquet(out: IO[bytes]) -> None:
            import pyarrow.parquet as pq

            pq.write_table(table, out)

        atomic_write(path, write_parquet)
        return
    if fmt == "jsonl":
        payload = b"".join(_dumps(row, name, i) + b"\n" for i, row in enumerate(rows))
    elif fmt == "json":
        payload = _dumps_array(rows, name)
    else:
        payload = _csv_bytes(rows, name, "\t" if fmt == "tsv" else ",")
    atomic_write(path, lambda out: out.write(payload))


def atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through a temp file in the same directory, fsync it, then rename it into place.

    An OSError (a folder in the way, no permission, a full disk) becomes ``OutputError`` naming
    ``path``, and the temp file is removed: a failed write leaves nothing behind.  The folder is
    created here for API callers (a pipeline's output folder); the CLI refuses a missing one
    before the work (``check_writable``)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            mode = 0o644
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputError(path, _reason(exc)) from None
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, OutputError):
            raise OutputError(path, _reason(exc)) from None
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows it
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_text(path: Path, text: str) -> None:
    """``text`` as UTF-8 at ``path``, atomically (reports, tag maps): same guarantees as rows."""
    payload = text.encode("utf-8")
    atomic_write(path, lambda out: out.write(payload))


def _default(value: Any) -> Any:
    """numpy scalars and sets/tuples from annotation code; anything else is an error."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot write a value of type {type(value).__name__}")


def _dumps(value: Any, name: str, index: int, option: int = 0) -> bytes:
    try:
        return orjson.dumps(value, default=_default, option=_OPTS | option)
    except (orjson.JSONEncodeError, TypeError):
        pass  # integers beyond 64 bits, nesting beyond orjson's limit: the stdlib handles them
    try:
        indent = 2 if option & orjson.OPT_INDENT_2 else None
        return json.dumps(value, ensure_ascii=False, default=_default, indent=indent).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise DataError(f"{name}: row {index + 1}: cannot write as JSON: {exc}") from None


def _dumps_array(rows: Sequence[Row], name: str) -> bytes:
    try:
        return orjson.dumps(list(rows), default=_default, option=_OPTS | orjson.OPT_INDENT_2) + b"\n"
    except (orjson.JSONEncodeError, TypeError):
        pass  # find the row orjson refused; write the others with orjson still
    parts = [_dumps(row, name, i, orjson.OPT_INDENT_2) for i, row in enumerate(rows)]
    body = b",\n".join(b"\n".join(b"  " + line for line in part.split(b"\n")) for part in parts)
    return b"[\n" + body + b"\n]\n"


def _columns(rows: Sequence[Row]) -> list[str]:
    """Union of keys in first-seen order, so original columns keep their place."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in seen:
                seen[key] = None
    return list(seen)


def _cell(value: Any, name: str, index: int) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return _dumps(value, name, index).decode("utf-8")  # lists/dicts/numbers as JSON text


def _csv_bytes(rows: Sequence[Row], name: str, delimiter: str) -> bytes:
    columns = _columns(rows)
    buffer = io.StringIO()
    # "\r\n" (RFC 4180) also makes the csv module quote cells holding a bare "\r"; with "\n" it
    # would not, and the reader would take that "\r" for a line break
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(columns)
    for i, row in enumerate(rows):
        writer.writerow([_cell(row.get(column), name, i) for column in columns])
    try:
        return buffer.getvalue().encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(f"{name}: cannot write text that is not valid Unicode: {exc}") from None


def _arrow_table(rows: Sequence[Row], name: str, schema: Any) -> Any:
    """Build the table column by column; columns of the input schema keep their exact type."""
    import pyarrow as pa

    if not rows and schema is not None:
        return schema.empty_table()
    columns = _columns(rows)
    original = set(schema.names) if schema is not None else set()
    fields, arrays = [], []
    for column in columns:
        values = [row.get(column) for row in rows]
        array = None
        if column in original:
            field = schema.field(column)
            with contextlib.suppress(pa.ArrowException, TypeError, ValueError):
                array = pa.array(values, type=field.type)
        if array is None:
            try:
                array = pa.array(values)
            except (pa.ArrowException, TypeError, ValueError) as exc:
                raise DataError(f"{name}: column '{column}' cannot be written to Parquet: {exc}") from None
            field = pa.field(column, array.type)
        fields.append(field)
        arrays.append(array)
    unchanged = schema is not None and columns == list(schema.names)
    metadata = schema.metadata if unchanged else None
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=metadata))
