"""Round trips and layout handling of winnow.data on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from winnow.data import DataError, load, parse_column_map, save
from winnow.data.ids import content_id
from winnow.types import Sample, Turn, alpaca_turns

DATA = Path(__file__).parent / "data"  # copies of real data, source and licence in data/README.md
ALPACA_3K = DATA / "alpaca_3k.json"
SEED = DATA / "self_instruct_seed_tasks.jsonl"

SHAREGPT_ROWS = [
    {
        "id": "conv-1",
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Hi — ¿qué tal? 你好"},
            {"from": "gpt", "value": "Fine.\nThanks!"},
            {"from": "human", "value": "Write code"},
            {"from": "gpt", "value": "```py\nprint('x')\n```"},
        ],
        "source": "test",
    },
    {"id": "conv-2", "conversations": [{"from": "user", "value": "Only a question"}], "source": "test"},
    {"id": "conv-3", "conversations": [{"from": "human", "value": "Q"}, {"from": "chatgpt", "value": "A"}]},
]
MESSAGES_ROWS = [
    {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "tag": 1},
    {
        "messages": [
            {"role": "system", "content": "sys"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "two"}],
            },
            {"role": "assistant", "content": "ok"},
        ],
        "tag": 2,
    },
]


@pytest.fixture(scope="module")
def alpaca3k():
    return load(ALPACA_3K)


def test_alpaca_3k_loads_fully(alpaca3k):
    # Loading speed is a benchmark (bench/bench_loading.py), not a timed test.
    ds = alpaca3k
    assert (ds.format, ds.layout, len(ds.samples), len(ds.rows), ds.bad_rows) == (
        "json",
        "alpaca",
        3000,
        3000,
        [],
    )
    raw = json.loads(ALPACA_3K.read_text(encoding="utf-8"))
    assert ds.rows == raw
    first = ds.samples[0]
    assert first.row is ds.rows[0] and first.index == 0
    assert first.alpaca == (raw[0]["instruction"], raw[0]["input"], raw[0]["output"])
    with_input = next(s for s in ds.samples if s.row["input"])
    instruction, inp, output = with_input.alpaca or ("", "", "")
    assert with_input.turns == [Turn("user", instruction + "\n\n" + inp), Turn("assistant", output)]
    assert all(len(s.id) == 17 and s.id.startswith("h") for s in ds.samples)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_alpaca_3k_json_round_trip(tmp_path, alpaca3k, suffix):
    out = save(alpaca3k.rows, tmp_path / f"out{suffix}")
    back = load(out)
    assert back.rows == alpaca3k.rows
    assert [list(r) for r in back.rows[:50]] == [list(r) for r in alpaca3k.rows[:50]]  # key order kept
    assert [s.id for s in back.samples] == [s.id for s in alpaca3k.samples]
    text = out.read_text(encoding="utf-8")
    assert "\\u" not in text or "\\u00" in text  # no ensure_ascii escaping of non-ASCII text


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_alpaca_subset_tabular_round_trip(tmp_path, alpaca3k, suffix):
    rows = alpaca3k.rows[:1500]
    out = save(rows, tmp_path / f"out{suffix}")
    back = load(out)
    assert back.format == suffix[1:]
    assert back.rows == rows
    assert [s.id for s in back.samples] == [s.id for s in alpaca3k.samples[:1500]]
    again = save(back.rows, tmp_path / f"again{suffix}", like=back)
    if suffix != ".parquet":
        assert again.read_bytes() == out.read_bytes()
    assert load(again).rows == rows


def test_csv_cells_stay_strings(tmp_path):
    src = tmp_path / "in.csv"
    src.write_text(
        'instruction,input,output,n\r\n"NaN","","null",007\r\nNA,"a,b","x\r\ny",1e3\r\n', encoding="utf-8"
    )
    ds = load(src)
    assert ds.rows == [
        {"instruction": "NaN", "input": "", "output": "null", "n": "007"},
        {"instruction": "NA", "input": "a,b", "output": "x\r\ny", "n": "1e3"},
    ]
    assert ds.samples[1].turns[0].content == "NA\n\na,b"
    assert load(save(ds.rows, tmp_path / "out.csv")).rows == ds.rows


def test_annotated_rows_in_csv_and_parquet(tmp_path, alpaca3k):
    rows = [dict(r, score=4.5, tags=["math", "code"], detail={"k": 1}, ok=True, none=None)
            for r in alpaca3k.rows[:20]]  # fmt: skip
    back = load(save(rows, tmp_path / "out.csv"))
    assert back.rows[0]["tags"] == '["math","code"]' and json.loads(back.rows[0]["tags"]) == ["math", "code"]
    assert (back.rows[0]["score"], back.rows[0]["detail"], back.rows[0]["ok"], back.rows[0]["none"]) == (
        "4.5",
        '{"k":1}',
        "true",
        "",
    )
    assert [s.id for s in back.samples] == [s.id for s in alpaca3k.samples[:20]]  # annotations keep ids
    pq_back = load(save(rows, tmp_path / "out.parquet"))
    assert pq_back.rows == rows


def test_parquet_schema_kept_where_columns_unchanged(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        pa.field("instruction", pa.large_string()), pa.field("output", pa.string()),
        pa.field("n", pa.int16()), pa.field("tags", pa.list_(pa.string())),
    ], metadata={b"origin": b"test"})  # fmt: skip
    table = pa.Table.from_pylist(
        [{"instruction": "a", "output": "b", "n": 1, "tags": ["x"]},
         {"instruction": "c", "output": "d", "n": 2, "tags": []}], schema=schema)  # fmt: skip
    src = tmp_path / "in.parquet"
    pq.write_table(table, src)
    ds = load(src)
    same = save(ds.rows, tmp_path / "same.parquet", like=ds)
    assert pq.read_schema(same).equals(pq.read_schema(src), check_metadata=True)
    assert pq.read_schema(same).field("instruction").type == pa.large_string()
    annotated = save([dict(r, score=3) for r in ds.rows], tmp_path / "ann.parquet", like=ds)
    got = pq.read_schema(annotated)
    assert got.field("n").type == pa.int16() and got.field("instruction").type == pa.large_string()
    assert got.field("score").type == pa.int64()


def test_sharegpt_round_trip_and_turns(tmp_path):
    src = tmp_path / "chat.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in SHAREGPT_ROWS), encoding="utf-8")
    ds = load(src, id_column="id")
    assert ds.layout == "sharegpt" and [s.id for s in ds.samples] == ["conv-1", "conv-2", "conv-3"]
    first = ds.samples[0]
    assert first.system == "Be brief." and first.alpaca is None
    assert first.exchanges() == [
        ("Hi — ¿qué tal? 你好", "Fine.\nThanks!"),
        ("Write code", "```py\nprint('x')\n```"),
    ]
    assert ds.samples[2].turns[1] == Turn("assistant", "A")
    for suffix in (".jsonl", ".json"):
        assert load(save(ds.rows, tmp_path / f"out{suffix}")).rows == SHAREGPT_ROWS
    columnar = [dict({"id": None, "conversations": None, "source": None}, **r) for r in SHAREGPT_ROWS]
    assert load(save(ds.rows, tmp_path / "out.parquet")).rows == columnar  # Parquet has no absent cells
    csv_back = load(save(ds.rows, tmp_path / "out.csv"))
    assert [s.turns for s in csv_back.samples] == [s.turns for s in ds.samples]  # list column as JSON text


def test_messages_layout_and_parts(tmp_path):
    src = tmp_path / "msgs.json"
    src.write_text(json.dumps(MESSAGES_ROWS), encoding="utf-8")
    ds = load(src)
    assert ds.layout == "messages" and ds.rows == MESSAGES_ROWS
    assert ds.samples[1].turns == [
        Turn("system", "sys"),
        Turn("user", "part one\ntwo"),
        Turn("assistant", "ok"),
    ]
    assert load(save(ds.rows, tmp_path / "out.jsonl")).rows == MESSAGES_ROWS


def test_same_conversation_same_id_across_layouts(tmp_path):
    alpaca = tmp_path / "a.jsonl"
    alpaca.write_text(json.dumps({"instruction": "Q", "output": "A"}) + "\n", encoding="utf-8")
    chat = tmp_path / "c.jsonl"
    chat.write_text(
        json.dumps({"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]})
        + "\n",
        encoding="utf-8",
    )
    assert (
        load(alpaca).samples[0].id
        == load(chat).samples[0].id
        == content_id([Turn("user", "Q"), Turn("assistant", "A")])
    )
    assert load(alpaca).samples[0].alpaca == ("Q", "", "A")  # `input` is optional


def test_alpaca_samples_build_turns_and_ids_when_first_asked(tmp_path):
    path = tmp_path / "a.jsonl"
    row = {"instruction": "Q", "input": "ctx", "output": "A", "extra": 1}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    sample = load(path).samples[0]
    assert sample._turns is None and sample._id is None  # a cached AlpaGasus re-run needs neither
    assert sample.turns == alpaca_turns("Q", "ctx", "A") == [Turn("user", "Q\n\nctx"), Turn("assistant", "A")]
    assert sample.id == content_id(sample.turns)
    assert sample == Sample(sample.id, list(sample.turns), sample.row, 0, ("Q", "ctx", "A"))
    assert sample != Sample("other", list(sample.turns), sample.row, 0, ("Q", "ctx", "A"))
    with pytest.raises(ValueError, match="turns or its Alpaca"):
        Sample(None, None, {}, 0)


def test_seed_tasks_with_dotted_column_map(tmp_path):
    mapping = parse_column_map("input=instances.0.input,output=instances.0.output,id=id")
    ds = load(SEED, column_map=mapping)
    assert (len(ds.samples), ds.layout, ds.bad_rows) == (175, "alpaca", [])
    raw = [json.loads(line) for line in SEED.read_text(encoding="utf-8").splitlines()]
    assert [s.id for s in ds.samples] == [r["id"] for r in raw]
    second = ds.samples[1]
    assert second.alpaca == (
        raw[1]["instruction"],
        raw[1]["instances"][0]["input"],
        raw[1]["instances"][0]["output"],
    )
    back = load(save(ds.rows, tmp_path / "seed.jsonl"), column_map=mapping)
    assert back.rows == raw and [s.turns for s in back.samples] == [s.turns for s in ds.samples]
    # a mapped field that no row has is the map's fault, said once (it was a bad row per line)
    with pytest.raises(DataError, match=r"seed_tasks\.jsonl: column map entry instruction=task: no row has the "
                                        r"field 'task' \(columns: id, name, instruction"):
        load(SEED, column_map={"instruction": "task", "output": "instances.0.output"})


def test_column_map_renames_and_layout_override(tmp_path):
    src = tmp_path / "qa.csv"
    src.write_text("qid,question,answer,instruction\nq1,What?,That.,decoy\n", encoding="utf-8")
    ds = load(src, column_map={"instruction": "question", "output": "answer", "id": "qid"})
    assert ds.samples[0].id == "q1" and ds.samples[0].alpaca == ("What?", "", "That.")
    chat = tmp_path / "odd.jsonl"
    chat.write_text(json.dumps({"instruction": "x", "dialog": [{"role": "user", "content": "hi"}]}) + "\n")
    # an `instruction` and no response column looks like a prompt pool (issue 16), but `dialog`
    # would be dropped unread: detection refuses and names it; --layout prompt reads "x" alone
    with pytest.raises(DataError, match=r"column 'dialog' \(nested data\) would be left unread.*--map messages=dialog"):
        load(chat, on_bad_row="skip")
    pooled = load(chat, layout="prompt")
    assert pooled.layout == "prompt" and pooled.samples[0].turns == [Turn("user", "x")]
    forced = load(chat, layout="messages", column_map={"messages": "dialog"})
    assert forced.layout == "messages" and forced.samples[0].turns == [Turn("user", "hi")]
    with pytest.raises(ValueError, match="unknown column map key"):
        load(chat, column_map={"question": "q"})
    with pytest.raises(ValueError, match="bad column map entry"):
        parse_column_map("instruction")
    with pytest.raises(ValueError, match="unknown layout"):
        load(chat, layout="dolly")


def test_json_suffix_holding_json_lines(tmp_path):
    src = tmp_path / "lines.json"
    src.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n')
    ds = load(src)
    assert ds.format == "jsonl" and len(ds.samples) == 2
    one = tmp_path / "one.json"
    one.write_text('{"instruction": "a", "output": "b"}')
    assert len(load(one).samples) == 1


def test_unknown_suffix_is_sniffed_and_output_format_follows_input(tmp_path):
    src = tmp_path / "data.txt"
    src.write_text('[{"instruction": "a", "output": "b"}]')
    ds = load(src)
    assert ds.format == "json"
    out = save(ds.rows, tmp_path / "result", like=ds)  # no suffix: the input's format
    assert json.loads(out.read_text()) == ds.rows
    with pytest.raises(DataError, match="cannot tell which format"):
        save(ds.rows, tmp_path / "result")
    # a suffix we do not write is an error, not the input's format under a wrong name
    with pytest.raises(DataError, match=r"cannot write a '\.out' file; name the output with one of: \.csv"):
        save(ds.rows, tmp_path / "result.out", like=ds)
    assert not (tmp_path / "result.out").exists()
    assert (
        save(ds.rows, tmp_path / "forced.out", format="csv")
        .read_bytes()
        .startswith(b"instruction,output\r\n")
    )


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "out.jsonl"
    save([{"instruction": "a", "output": "b"}], target)
    before = target.read_bytes()
    assert oct(target.stat().st_mode & 0o777) == "0o644"

    def crash(*args, **kwargs):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        save([{"instruction": "new", "output": "rows"}] * 1000, target)
    assert target.read_bytes() == before  # the old complete file is still there
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.jsonl"]  # temp file removed


def test_unwritable_value_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"row 2: cannot write as JSON"):
        save([{"a": 1}, {"a": object()}], tmp_path / "x.jsonl")
    assert not (tmp_path / "x.jsonl").exists()
    with pytest.raises(DataError, match="column 'a' cannot be written to Parquet"):
        save([{"a": 1}, {"a": "text"}], tmp_path / "x.parquet")


def test_big_integers_and_deep_rows_survive_round_trip(tmp_path):
    rows = [{"instruction": "a", "output": "b", "big": 123456789012345678901234567890, "neg": -(2**70)},
            {"instruction": "c", "output": "d", "deep": _nest(200)}]  # fmt: skip
    for suffix in (".jsonl", ".json"):
        src = tmp_path / f"in{suffix}"
        src.write_text(json.dumps(rows) if suffix == ".json" else "".join(json.dumps(r) + "\n" for r in rows))
        ds = load(src)
        assert ds.rows == rows
        assert load(save(ds.rows, tmp_path / f"out{suffix}")).rows == rows


def _nest(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_hf_directory_without_datasets_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "dataset_info.json").write_text("{}")
    (tmp_path / "ds" / "state.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(DataError, match=r"ds: .*pip install 'winnow-llm\[hf\]'"):
        load(tmp_path / "ds")


def test_hf_directory_round_trip(tmp_path):
    datasets = pytest.importorskip("datasets")
    # Arrow needs one type per column, so every message content here is a plain string
    rows = [
        {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], "tag": 1},
        {"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
                      {"role": "assistant", "content": "hello"}], "tag": 2},
    ]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "hf"))
    ds = load(tmp_path / "hf")
    assert ds.format == "hf" and ds.rows == rows
    assert [len(s.turns) for s in ds.samples] == [2, 3]
    with pytest.raises(DataError, match="no format to write it in"):
        save(ds.rows, tmp_path / "out", like=ds)


def test_an_hf_folder_rated_to_an_output_without_a_suffix_is_refused_before_judging(tmp_path, fake_server):
    """`-o out` means "the input's format", and an HF folder is read, not written: said before any
    request (it was said after every judgment had been bought)."""
    datasets = pytest.importorskip("datasets")
    rows = [{"instruction": f"Add {i} and 1.", "input": "", "output": str(i + 1)} for i in range(4)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "hf"))
    from winnow.api import rate

    with pytest.raises(DataError, match=r"no format to write it in.*'hf'"):
        rate(tmp_path / "hf", ["alpagasus"], "openai/judge", api_base=fake_server.url, cache_dir=tmp_path / "c",
             output=tmp_path / "out")
    assert fake_server.total == 0
    done = rate(tmp_path / "hf", ["alpagasus"], "openai/judge", api_base=fake_server.url, cache_dir=tmp_path / "c",
                output=tmp_path / "out.parquet")
    assert [r["alpagasus_status"] for r in done.rows] == ["ok"] * 4


def test_import_is_cheap():
    heavy = "('pandas', 'pyarrow', 'numpy', 'datasets')"
    code = f"import sys, winnow.data; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
