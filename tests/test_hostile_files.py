"""Property tests: every reader on generated hostile input.

Each case either raises DataError naming the file (and the line/row where there is one) or is
handled; no other exception type escapes, and no row is lost: records in = samples + bad rows,
with the bad rows exactly the ones that were damaged.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from winnow.data import DataError, Dataset, load, save

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_counter = itertools.count()

text = st.text(max_size=40)  # any Unicode except lone surrogates, incl. NUL, CR, quotes, commas
rows = st.lists(
    st.fixed_dictionaries({"instruction": text.filter(str.strip), "input": text, "output": text}),
    min_size=1,
    max_size=12,
)

# Row-level damage that must become exactly one bad row (field, message fragment).
ROW_DAMAGE = {
    "int_instruction": lambda r: dict(r, instruction=5),
    "list_output": lambda r: dict(r, output=["a", "b"]),
    "null_instruction": lambda r: dict(r, instruction=None),
    "missing_output": lambda r: {k: v for k, v in r.items() if k != "output"},
    "dict_input": lambda r: dict(r, input={"x": 1}),
    "not_object": lambda r: [r["instruction"]],
    "scalar": lambda r: 42,
    "deep": lambda r: dict(r, input=_nest(300)),
}


def _nest(depth: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hostile")


def _file(workdir: Path, suffix: str, data: bytes) -> Path:
    path = workdir / f"f{next(_counter)}{suffix}"
    path.write_bytes(data)
    return path


def _load(path: Path, **kwargs) -> Dataset | DataError:
    """load(), with DataError returned (checked to name the file); anything else propagates.

    The layout is Alpaca by name: a file whose every row lost its output is a valid prompt pool
    now (issue 16), so detection would read it as one; detection has its own tests.
    """
    kwargs.setdefault("layout", "alpaca")
    try:
        return load(path, **kwargs)
    except DataError as exc:
        assert str(exc).startswith(f"{path}: "), str(exc)
        for bad in exc.bad_rows:
            assert bad.path == str(path)
            assert bad.line is not None or bad.index >= 0
        return exc


def _check_accounting(ds: Dataset, path: Path, n_records: int) -> None:
    assert len(ds.samples) + len(ds.bad_rows) == n_records
    seen = sorted([s.index for s in ds.samples] + [b.index for b in ds.bad_rows])
    assert seen == list(range(n_records))  # every record accounted for exactly once
    for bad in ds.bad_rows:
        assert bad.describe().startswith(f"{path}: line {bad.line}" if bad.line else f"{path}: row ")


# --- JSON Lines -------------------------------------------------------------------------------


@SETTINGS
@given(
    rows=rows,
    damage=st.lists(st.tuples(st.integers(0, 11), st.sampled_from([*ROW_DAMAGE, "truncate", "nul", "utf8"]))),
    bom=st.booleans(),
    crlf=st.booleans(),
    blank_every=st.integers(0, 4),
)
def test_jsonl_damaged_lines_are_exactly_the_bad_rows(workdir, rows, damage, bom, crlf, blank_every):
    lines: list[bytes] = [json.dumps(r, ensure_ascii=False).encode("utf-8") for r in rows]
    damaged: set[int] = set()
    for at, kind in damage:
        i = at % len(lines)
        line = json.dumps(rows[i], ensure_ascii=False).encode("utf-8")
        if kind == "truncate":
            lines[i] = line[: max(1, len(line) // 2)]
        elif kind == "nul":
            lines[i] = line[:-1] + b"\x00}"
        elif kind == "utf8":
            lines[i] = line[:1] + b"\xff\xfe" + line[1:]
        else:
            lines[i] = json.dumps(ROW_DAMAGE[kind](rows[i])).encode("utf-8")
        damaged.add(i)
    body: list[bytes] = []
    line_of: dict[int, int] = {}
    for i, line in enumerate(lines):
        if blank_every and i % blank_every == 0:
            body.append(b"   ")
        body.append(line)
        line_of[i] = len(body)
    data = (b"\xef\xbb\xbf" if bom else b"") + (b"\r\n" if crlf else b"\n").join(body) + b"\n"
    path = _file(workdir, ".jsonl", data)

    ds = _load(path, on_bad_row="skip")
    assert isinstance(ds, Dataset)
    _check_accounting(ds, path, len(rows))
    assert {b.index for b in ds.bad_rows} == damaged
    assert [b.line for b in ds.bad_rows] == [line_of[b.index] for b in ds.bad_rows]
    assert ds.good_rows == [r for i, r in enumerate(rows) if i not in damaged]
    failed = _load(path)
    assert isinstance(failed, DataError) == bool(damaged)


# --- JSON arrays ------------------------------------------------------------------------------


@SETTINGS
@given(
    rows=rows,
    damage=st.lists(st.tuples(st.integers(0, 11), st.sampled_from(list(ROW_DAMAGE)))),
    bom=st.booleans(),
    crlf=st.booleans(),
)
def test_json_array_damaged_elements_are_exactly_the_bad_rows(workdir, rows, damage, bom, crlf):
    values: list[object] = list(rows)
    damaged = set()
    for at, kind in damage:
        i = at % len(values)
        values[i] = ROW_DAMAGE[kind](rows[i])
        damaged.add(i)
    text = json.dumps(values, indent=2, ensure_ascii=False)
    data = (b"\xef\xbb\xbf" if bom else b"") + text.replace("\n", "\r\n" if crlf else "\n").encode("utf-8")
    path = _file(workdir, ".json", data)
    ds = _load(path, on_bad_row="skip")
    assert isinstance(ds, Dataset)
    _check_accounting(ds, path, len(rows))
    assert {b.index for b in ds.bad_rows} == damaged
    assert ds.good_rows == [r for i, r in enumerate(rows) if i not in damaged]


@SETTINGS
@given(rows=rows, cut=st.floats(0.0, 1.0, exclude_max=True), junk=st.sampled_from([b"", b"\xff", b"\x00"]))
def test_json_array_truncated_or_corrupted_names_the_line(workdir, rows, cut, junk):
    data = json.dumps(rows, indent=2, ensure_ascii=False).encode("utf-8")
    at = int(len(data) * cut)
    broken = data[:at] + junk if junk else data[: max(1, at)]
    path = _file(workdir, ".json", broken)
    result = _load(path, on_bad_row="skip")
    assert isinstance(result, DataError)  # a broken array cannot be read past the damage
    if result.bad_rows:
        (bad,) = result.bad_rows
        assert bad.line is not None and 1 <= bad.line <= broken.count(b"\n") + 1
        assert 0 <= bad.index < len(rows)


# --- CSV / TSV --------------------------------------------------------------------------------


@SETTINGS
@given(
    rows=rows,
    damage=st.lists(st.tuples(st.integers(0, 11), st.sampled_from(["utf8", "short", "long", "empty_instr"]))),
    fmt=st.sampled_from(["csv", "tsv"]),
    bom=st.booleans(),
    crlf=st.booleans(),
)
def test_csv_damaged_rows_are_exactly_the_bad_rows(workdir, rows, damage, fmt, bom, crlf):
    out = io.StringIO()
    # with a "\n" terminator the csv module leaves a bare "\r" unquoted, so quote every cell then
    quoting = csv.QUOTE_MINIMAL if crlf else csv.QUOTE_ALL
    delimiter = "\t" if fmt == "tsv" else ","
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n", quoting=quoting)
    writer.writerow(["instruction", "input", "output"])
    kinds = {at % len(rows): kind for at, kind in damage}
    chunks = [out.getvalue().encode("utf-8")]
    for i, row in enumerate(rows):
        cells = [row["instruction"], row["input"], row["output"]]
        kind = kinds.get(i)
        if kind == "short":
            cells = cells[:2]
        elif kind == "long":
            cells.append("extra")
        elif kind == "empty_instr":
            cells[0], cells[1] = " ", ""
        out.seek(0)
        out.truncate()
        writer.writerow(cells)
        chunk = out.getvalue().encode("utf-8")
        if kind == "utf8":
            chunk = b'"\xff' + chunk[1:] if chunk.startswith(b'"') else b"\xff" + chunk
        chunks.append(chunk)
    path = _file(workdir, f".{fmt}", (b"\xef\xbb\xbf" if bom else b"") + b"".join(chunks))
    ds = _load(path, on_bad_row="skip")
    assert isinstance(ds, Dataset)
    _check_accounting(ds, path, len(rows))
    assert {b.index for b in ds.bad_rows} == set(kinds)
    for bad in ds.bad_rows:
        assert bad.field is not None or kinds[bad.index] == "long"
    assert ds.good_rows == [r for i, r in enumerate(rows) if i not in kinds]


# --- Parquet ----------------------------------------------------------------------------------


@SETTINGS
@given(rows=rows, cut=st.floats(0.0, 1.0, exclude_max=True), bad_type=st.booleans())
def test_parquet_truncated_or_mistyped(workdir, rows, cut, bad_type):
    path = workdir / f"p{next(_counter)}.parquet"
    source = [dict(r, instruction=len(r["instruction"])) for r in rows] if bad_type else rows
    save(source, path)
    ds = _load(path, on_bad_row="skip")
    assert isinstance(ds, Dataset)
    _check_accounting(ds, path, len(rows))
    assert len(ds.bad_rows) == (len(rows) if bad_type else 0)
    assert all(b.field == "instruction" and b.describe().startswith(f"{path}: row ") for b in ds.bad_rows)
    data = path.read_bytes()
    cut_path = _file(workdir, ".parquet", data[: max(1, int(len(data) * cut))])
    assert isinstance(_load(cut_path), DataError)


# --- any bytes at all -------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.sampled_from(
                [
                    b"{",
                    b"}",
                    b"[",
                    b"]",
                    b'"',
                    b",",
                    b":",
                    b"\n",
                    b"\r",
                    b"\x00",
                    b"\xff",
                    b"\xef\xbb\xbf",
                    b"1",
                    b"a",
                    b'"instruction"',
                    b'"output"',
                    b"null",
                ]
            ),
            max_size=60,
        ).map(b"".join),
    ),
    suffix=st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".parquet", ".txt"]),
    mode=st.sampled_from(["fail", "skip"]),
)
def test_arbitrary_bytes_never_raise_anything_but_data_error(workdir, data, suffix, mode):
    path = _file(workdir, suffix, data)
    result = _load(path, on_bad_row=mode)
    if isinstance(result, Dataset):
        assert len(result.samples) + len(result.bad_rows) >= len(result.rows)
        if mode == "fail":
            assert result.bad_rows == []


# --- ids --------------------------------------------------------------------------------------


@SETTINGS
@given(ids=st.lists(st.one_of(st.sampled_from(["a", "b", "c"]), st.integers(0, 3)), min_size=1, max_size=15))
def test_duplicate_ids_keep_the_first_and_name_both(workdir, ids):
    rows_ = [{"id": v, "instruction": f"q{i}", "output": "a"} for i, v in enumerate(ids)]
    path = _file(workdir, ".jsonl", "".join(json.dumps(r) + "\n" for r in rows_).encode())
    ds = _load(path, id_column="id", on_bad_row="skip")
    assert isinstance(ds, Dataset)
    _check_accounting(ds, path, len(ids))
    first: dict[str, int] = {}
    for i, v in enumerate(ids):
        first.setdefault(str(v), i)
    assert [s.index for s in ds.samples] == sorted(first.values())
    assert [s.id for s in ds.samples] == list(first)
    for bad in ds.bad_rows:
        assert bad.field == "id" and f"first used on line {first[str(ids[bad.index])] + 1}" in bad.message
    failed = _load(path, id_column="id")
    assert isinstance(failed, DataError) == (len(first) < len(ids))


# --- fixed hostile cases ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_ten_megabyte_field_is_read_and_written(tmp_path, suffix):
    big = "x" * 10_000_000 + "é"
    path = save(
        [{"instruction": "a", "output": big}, {"instruction": "b", "output": "c"}], tmp_path / f"b{suffix}"
    )
    ds = load(path)
    assert len(ds.samples) == 2 and ds.samples[0].alpaca == ("a", "", big)


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".tsv", ".parquet"])
def test_empty_file_and_directory(tmp_path, suffix):
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=rf"^{empty}: file is empty"):
        load(empty)
    folder = tmp_path / f"folder{suffix}"
    folder.mkdir()
    with pytest.raises(DataError, match=rf"^{folder}: is a directory"):
        load(folder)


@pytest.mark.parametrize("depth", [300, 3_000, 300_000])
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_deeply_nested_values(tmp_path, depth, suffix):
    nested = b"[" * depth + b"]" * depth
    row = b'{"instruction": "a", "output": "b", "x": ' + nested + b"}"
    ok = b'{"instruction": "c", "output": "d"}'
    data = ok + b"\n" + row + b"\n" if suffix == ".jsonl" else b"[" + ok + b",\n" + row + b"]"
    path = tmp_path / f"deep{suffix}"
    path.write_bytes(data)
    result = _load(path, on_bad_row="skip")
    if isinstance(result, DataError):  # a JSON array cannot be read past the damage
        assert suffix == ".json" and result.bad_rows[0].index == 1 and result.bad_rows[0].line == 2
    else:
        assert [s.row["instruction"] for s in result.samples] == ["c"]
        assert [(b.index, b.line) for b in result.bad_rows] == [(1, 2 if suffix == ".jsonl" else None)]
        assert "nested" in result.bad_rows[0].message or "depth" in result.bad_rows[0].message


# --- writers on hostile values ----------------------------------------------------------------


@SETTINGS
@given(
    rows=rows,
    extra=st.lists(st.one_of(text, st.integers(-(2**70), 2**70), st.none()), min_size=1, max_size=1),
    suffix=st.sampled_from([".jsonl", ".json", ".csv", ".tsv", ".parquet"]),
)
def test_written_rows_read_back_unchanged(workdir, rows, extra, suffix):
    """Any text (CR, NUL, quotes, delimiters, non-BMP) survives save -> load in every format."""
    path = save(rows, workdir / f"w{next(_counter)}{suffix}")
    back = load(path)
    assert back.rows == rows
    assert [s.id for s in back.samples] == [
        s.id for s in load(save(rows, workdir / f"w{next(_counter)}.json"))
    ]
    if suffix in (".jsonl", ".json"):  # JSON keeps non-string values exactly, big integers included
        annotated = [dict(r, extra=extra[0]) for r in rows]
        assert load(save(annotated, path)).rows == annotated
