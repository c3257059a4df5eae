"""Bad rows: errors name the file, the line or row, and the field; skip mode keeps count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from winnow.data import DataError, load, save
from winnow.types import BadRow


def _jsonl(path: Path, rows: list[object], broken: dict[int, str] | None = None) -> Path:
    """Write rows one per line; ``broken`` replaces given 1-based lines with raw text."""
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    for lineno, text in (broken or {}).items():
        lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _alpaca(n: int) -> list[object]:
    return [{"instruction": f"task {i}", "input": "", "output": f"answer {i}"} for i in range(n)]


def test_broken_line_17_is_named(tmp_path):
    src = _jsonl(tmp_path / "data.jsonl", _alpaca(30), {17: '{"instruction": "task 16", "output": '})
    with pytest.raises(DataError) as info:
        load(src)
    err = info.value
    assert isinstance(err, ValueError)
    assert str(err).startswith(f"{src}: line 17: invalid JSON")
    assert [(b.line, b.index, b.path) for b in err.bad_rows] == [(17, 16, str(src))]
    assert str(err) == err.bad_rows[0].describe()


def test_skip_mode_reports_the_skipped_line_and_keeps_order(tmp_path):
    src = _jsonl(tmp_path / "data.jsonl", _alpaca(30), {17: "not json at all"})
    ds = load(src, on_bad_row="skip")
    assert len(ds.bad_rows) == 1 and ds.bad_rows[0].line == 17
    assert len(ds.samples) == 29
    assert ds.good_rows == [r for i, r in enumerate(_alpaca(30)) if i != 16]
    assert [s.index for s in ds.samples] == [i for i in range(30) if i != 16]
    out = save(ds.good_rows, tmp_path / "good.jsonl")
    assert len(out.read_text().splitlines()) == 29


def test_blank_lines_and_crlf_are_not_rows(tmp_path):
    src = tmp_path / "crlf.jsonl"
    src.write_bytes(
        b'\xef\xbb\xbf{"instruction": "a", "output": "b"}\r\n\r\n  \r\n'
        b'{"instruction": "c", "output": "d"}\r\n'
    )
    ds = load(src)
    assert [s.row["instruction"] for s in ds.samples] == ["a", "c"]
    bad = tmp_path / "crlf_bad.jsonl"
    bad.write_bytes(b'{"instruction": "a", "output": "b"}\r\n\r\n{"instruction": 5, "output": "d"}\r\n')
    with pytest.raises(DataError, match=r"line 3, field 'instruction': expected a string, got int"):
        load(bad)


def test_missing_field_names_the_field(tmp_path):
    rows = _alpaca(5)
    del rows[3]["output"]  # type: ignore[attr-defined]
    src = _jsonl(tmp_path / "m.jsonl", rows)
    with pytest.raises(DataError, match=r"m\.jsonl: line 4, field 'output': missing field"):
        load(src)


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"instruction": ["a"], "output": "b"}, "instruction", "expected a string, got list"),
        ({"instruction": "a", "input": 3, "output": "b"}, "input", "expected a string, got int"),
        ({"instruction": "a", "output": None}, "output", "expected a string, got null"),
        ({"instruction": "  ", "output": "b"}, "instruction", "empty instruction"),
    ],
)
def test_wrong_types_alpaca(tmp_path, row, field, message):
    src = _jsonl(tmp_path / "t.jsonl", [*_alpaca(2), row])
    with pytest.raises(DataError) as info:
        load(src)
    (bad,) = info.value.bad_rows
    assert (bad.line, bad.field, bad.message) == (3, field, message)


@pytest.mark.parametrize(
    ("conversations", "field", "message"),
    [
        ([], "conversations", "empty conversation"),
        ("hello", "conversations", "expected a list of turns, got str"),
        ([{"from": "human", "value": 1}], "conversations.0.value", "expected a string, got int"),
        ([{"from": "human"}], "conversations.0.value", "missing field"),  # ShareGPT: `from` goes with `value`
            ([{"role": "user"}], "conversations.0.content", "missing field"),
        ([{"value": "x"}], "conversations.0.from", "missing field (expected 'from' or 'role')"),
        ([{"from": "alien", "value": "x"}], "conversations.0.from", "unknown speaker 'alien'"),
        (["hi"], "conversations.0", "expected an object, got str"),
        ([{"from": "gpt", "value": "only an answer"}], "conversations", "no user turn with text"),
    ],
)
def test_bad_conversations(tmp_path, conversations, field, message):
    good = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    src = _jsonl(tmp_path / "c.jsonl", [good, {"conversations": conversations}, good])
    ds = load(src, on_bad_row="skip")
    assert len(ds.samples) == 2 and len(ds.rows) == 3
    (bad,) = ds.bad_rows
    assert (bad.line, bad.field, bad.message) == (2, field, message)


def test_messages_non_text_part_and_null_content(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "narrator", "content": "x"}]},
        {"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "x"}]},  # tool turns: fine
    ]
    ds = load(_jsonl(tmp_path / "m.jsonl", rows), on_bad_row="skip")
    assert [(b.line, b.field) for b in ds.bad_rows] == [
        (1, "messages.0.content.0"),
        (2, "messages.1.content"),
        (3, "messages.1.role"),
    ]


def test_non_object_rows(tmp_path):
    src = _jsonl(tmp_path / "n.jsonl", [*_alpaca(1), [1, 2], "text", None, 7])
    ds = load(src, on_bad_row="skip")
    assert [(b.line, b.message) for b in ds.bad_rows] == [
        (2, "expected an object, got a JSON list"),
        (3, "expected an object, got a JSON str"),
        (4, "expected an object, got null"),
        (5, "expected an object, got a JSON int"),
    ]
    arr = tmp_path / "n.json"
    arr.write_text(json.dumps([*_alpaca(2), 5]))
    with pytest.raises(DataError, match=r"n\.json: row 3: expected an object, got a JSON int"):
        load(arr)


def test_duplicate_user_ids_name_both_rows(tmp_path):
    rows = [dict(r, id=f"x{i % 3}") for i, r in enumerate(_alpaca(4))]  # type: ignore[arg-type]
    src = _jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(
        DataError, match=r"d\.jsonl: line 4, field 'id': duplicate id 'x0', first used on line 1"
    ):
        load(src, id_column="id")
    ds = load(src, id_column="id", on_bad_row="skip")
    assert [s.id for s in ds.samples] == ["x0", "x1", "x2"] and ds.bad_rows[0].index == 3
    csv_src = tmp_path / "d.csv"
    csv_src.write_text("id,instruction,output\n7,a,b\n,c,d\n7,e,f\n")
    ds = load(csv_src, id_column="id", on_bad_row="skip")
    assert [(b.line, b.field, b.message) for b in ds.bad_rows] == [
        (3, "id", "unusable id '' (expected a non-empty string or an integer)"),
        (4, "id", "duplicate id '7', first used on line 2"),
    ]
    with pytest.raises(DataError, match="row 2, field 'id': missing id"):
        arr = tmp_path / "d.json"
        arr.write_text(
            json.dumps([{"id": 1, "instruction": "a", "output": "b"}, {"instruction": "a", "output": "c"}])
        )
        load(arr, id_column="id")


def test_content_ids_may_repeat_for_identical_rows(tmp_path):
    ds = load(_jsonl(tmp_path / "same.jsonl", [*_alpaca(1), *_alpaca(1)]))
    assert len(ds.samples) == 2 and ds.samples[0].id == ds.samples[1].id  # same content, same judgment


def test_fail_mode_reports_every_bad_row(tmp_path):
    src = _jsonl(
        tmp_path / "many.jsonl", _alpaca(10), {2: "{", 5: "[", 9: '{"instruction": 1, "output": "x"}'}
    )
    with pytest.raises(DataError) as info:
        load(src)
    assert [b.line for b in info.value.bad_rows] == [2, 5, 9]
    assert str(info.value).endswith("(and 2 more bad rows)")


def test_truncated_json_array_names_line_and_row(tmp_path):
    text = json.dumps(_alpaca(6), indent=2)
    src = tmp_path / "cut.json"
    src.write_text(text[: text.index('"task 4"') + 3])
    with pytest.raises(DataError) as info:
        load(src, on_bad_row="skip")  # a broken array cannot be skipped past
    (bad,) = info.value.bad_rows
    assert bad.index == 4 and bad.line == len(src.read_text().splitlines())
    assert str(info.value).startswith(f"{src}: line {bad.line}: invalid JSON")


def test_csv_ragged_rows_and_bad_utf8(tmp_path):
    src = tmp_path / "r.csv"
    src.write_bytes(b'instruction,input,output\na,,b\nc,d\ne,f,g,h\n"caf\xe9",,x\nok,,fine\n')
    ds = load(src, on_bad_row="skip")
    assert [s.row["instruction"] for s in ds.samples] == ["a", "ok"]
    assert [(b.line, b.field, b.message) for b in ds.bad_rows] == [
        (3, "output", "2 fields, but the header has 3"),
        (4, None, "4 fields, but the header has 3"),
        (5, "instruction", "invalid UTF-8"),
    ]


def test_csv_malformed_quotes_are_bad_rows(tmp_path):
    src = tmp_path / "q.csv"
    src.write_text('instruction,output\na,"b"junk\nc,"5"" screen"\ne,"never closed\nf,g\n')
    ds = load(src, on_bad_row="skip")
    assert [s.row for s in ds.samples] == [{"instruction": "c", "output": '5" screen'}]
    assert [(b.line, b.message) for b in ds.bad_rows] == [
        (2, "malformed CSV: ',' expected after '\"'"),
        (4, "malformed CSV: unexpected end of data"),
    ]


def test_file_level_problems(tmp_path):
    cases = {
        "empty.jsonl": b"",
        "blank.json": b"  \n\n",
        "header_only_dup.csv": b"a,a\n1,2\n",
        "object.json": b'{"instruction": "a",\n "output": "b"}',
        "scalar.json": b"42",
        "utf16.jsonl": '{"instruction": "a", "output": "b"}\n'.encode("utf-16")[:-1],
        "odd.txt": b"hello",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError, match=rf"^{tmp_path / name}: "):
            load(tmp_path / name)
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "missing.jsonl")
    with pytest.raises(DataError, match="is a directory"):
        load(tmp_path)
    with pytest.raises(DataError, match=r"cannot tell the layout.*keys: question, answer"):
        _jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}])
        load(tmp_path / "qa.jsonl")


def test_utf16_with_bom_is_read(tmp_path):
    src = tmp_path / "u16.jsonl"
    src.write_bytes('{"instruction": "é", "output": "b"}\n'.encode("utf-16"))
    assert load(src).samples[0].alpaca == ("é", "", "b")


def test_invalid_utf8_and_nul_in_jsonl_lines(tmp_path):
    src = tmp_path / "enc.jsonl"
    src.write_bytes(
        b'{"instruction": "a", "output": "b"}\n{"instruction": "\xff", "output": "b"}\n'
        b'{"instruction": "x\x00", "output": "b"}\n{"instruction": "x\\u0000", "output": "b"}\n'
    )
    ds = load(src, on_bad_row="skip")
    assert [(b.line, b.message.split(" (")[0].split(":")[0]) for b in ds.bad_rows] == [
        (2, "invalid UTF-8"),
        (3, "invalid JSON"),
    ]
    assert ds.samples[-1].alpaca == ("x\x00", "", "b")  # an escaped NUL is valid JSON text


def test_bad_row_describe_for_rows_without_lines():
    bad = BadRow("f.parquet", 4, None, "output", "missing field")
    assert bad.describe() == "f.parquet: row 5, field 'output': missing field"


def test_on_bad_row_is_validated(tmp_path):
    with pytest.raises(ValueError, match="on_bad_row"):
        load(tmp_path / "x.jsonl", on_bad_row="keep")  # type: ignore[arg-type]
