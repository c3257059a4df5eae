"""Safe JSON decoding: orjson on the fast path, the standard library where orjson would be wrong.

orjson is ~1.5-3x faster, but (measured with orjson 3.8.3) it turns integers beyond 64 bits into
floats, which would break the round-trip promise, and it overflows the C stack (a segfault, not an
exception) on documents nested tens of thousands of levels deep. So a document goes to orjson
only when its bracket count proves it shallow and no long integer literal appears; otherwise the
standard library decodes it (exact big integers, RecursionError instead of a crash), as it does
ASCII text with few digits, where it is as fast as orjson (``_text_heavy_ascii``). Rows nested
deeper than MAX_DEPTH are refused at read time so that every row we accept can be written back.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

MAX_DEPTH = 253  # deepest row we accept: orjson.dumps writes at most 254 levels (row + list)
ORJSON_SAFE_BRACKETS = 20_000  # a document with fewer brackets cannot be nested deeper than this
SNIFF_BYTES = 65_536  # what _text_heavy_ascii looks at (smaller documents: the orjson way)
_DIGITS = bytes(0x31 if 0x30 <= b <= 0x39 else 0x30 for b in range(256))  # digit -> "1", else "0"
_LONG_RUN = b"1" * 19  # a 19+ digit integer may not fit in 64 bits


class JSONProblem(Exception):
    """A decoding failure with a 1-based line (within the decoded bytes, None if unknown)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _std_loads(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)


def brackets(data: bytes) -> int:
    """How many ``[`` and ``{`` bytes ``data`` holds: a bound on how deep it can nest."""
    return data.count(b"[") + data.count(b"{")


def loads(data: bytes, opening: int | None = None) -> Any:
    """Decode one JSON document; raise JSONProblem with a line number on any failure.

    ``opening``: ``brackets(data)`` when the caller has counted them already (4 MB: ~3 ms).
    """
    try:
        if _text_heavy_ascii(data):
            return _std_loads(data)
        if opening is None:
            opening = brackets(data)
        if opening <= ORJSON_SAFE_BRACKETS and not _has_long_int(data):
            return orjson.loads(data)
        return _std_loads(data)
    except (ValueError, RecursionError) as exc:
        raise explain(data, exc) from None


def _text_heavy_ascii(data: bytes) -> bool:
    """ASCII text with few digits: the standard library decodes it as fast as orjson (9,229
    Alpaca rows: 12 ms against 16) and needs no long-integer scan first (7 ms), so it wins.
    Number-heavy documents (embeddings) and non-ASCII text stay with orjson, which is several
    times faster on floats and ~1.5x on UTF-8.  Only speed depends on this guess, never the
    result: both decoders give the same values for a document with no long integers."""
    if len(data) < SNIFF_BYTES or not data.isascii():
        return False
    head = data[:SNIFF_BYTES]
    return head.translate(_DIGITS).count(b"1") < len(head) // 20  # under 5% digits


def _has_long_int(data: bytes) -> bool:
    """True when a 19+ digit number may stand as a JSON number (not inside a string).

    A digit run counts when the nearest non-blank byte before it is ``:``, ``[`` or ``,``.
    Runs inside strings that happen to follow such a byte only cost the slower decoder.
    """
    marks = data.translate(_DIGITS)  # bytes.find on this is far faster than a regex scan
    start = marks.find(_LONG_RUN)
    while start != -1:
        before = data[max(0, start - 4096) : start].rstrip(b" \t\r\n-")
        if not before or before[-1:] in (b":", b"[", b","):
            return True
        end = marks.find(b"0", start)
        if end == -1:
            break
        start = marks.find(_LONG_RUN, end)
    return False


def dumpable(doc: Any) -> bool:
    """Cheap whole-document check that no row is nested deeper than orjson can write."""
    try:
        orjson.dumps(doc)
    except (orjson.JSONEncodeError, TypeError):
        return False
    return True


def explain(data: bytes, exc: BaseException) -> JSONProblem:
    """Turn a decoder exception into a message a user can act on, with its line number."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        line = data.count(b"\n", 0, bad.start) + 1
        column = bad.start - (data.rfind(b"\n", 0, bad.start) + 1) + 1
        byte = data[bad.start : bad.start + 1].hex()
        return JSONProblem(f"invalid UTF-8 (byte 0x{byte} at column {column})", line)
    if isinstance(exc, RecursionError):
        return JSONProblem("value nested too deeply to decode")
    if isinstance(exc, json.JSONDecodeError):  # orjson's error subclasses it
        if "depth" in exc.msg or "recursion" in exc.msg:  # orjson's own nesting limit
            return JSONProblem("value nested too deeply to decode", exc.lineno)
        return JSONProblem(f"invalid JSON: {exc.msg} (column {exc.colno})", exc.lineno)
    return JSONProblem(f"invalid JSON: {exc}")


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when ``value`` nests containers more than ``limit`` levels (iterative, bounded)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return False


_WS = re.compile(r"[ \t\r\n]*")


def _skip_ws(text: str, pos: int) -> int:
    match = _WS.match(text, pos)
    return match.end() if match else pos


def locate_array_error(data: bytes) -> tuple[int, int] | None:
    """For a JSON array that failed to decode: (element index, line) of the first bad element.

    Walks the array with the standard library's raw_decode so the message can say which row is
    broken (orjson only reports a byte position). None when the walk finds nothing wrong.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as bad:
        text = data[: bad.start].decode("utf-8")
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    pos = _skip_ws(text, 0)
    if text[pos : pos + 1] != "[":
        return None
    pos += 1
    index = 0
    while True:
        pos = _skip_ws(text, pos)
        if text[pos : pos + 1] == "]":
            return None
        try:
            _, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError):
            return index, text.count("\n", 0, pos) + 1
        pos = _skip_ws(text, pos)
        sep = text[pos : pos + 1]
        if sep == ",":
            pos += 1
            index += 1
        elif sep == "]":
            return None
        else:
            return index, text.count("\n", 0, pos) + 1
