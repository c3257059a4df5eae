"""Nothing is dropped silently (issue: exploratory data-layer bugs).

A mapped path that no row has, a layout detected by leaving responses unread, an empty response
sent to a judge that reads it, a mis-named output suffix, records wrapped in one object or a
JSON array saved as .jsonl: each is an error (or a clear reading) naming the file, row and field.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from winnow.api import rate
from winnow.cli.app import app
from winnow.data import DataError, load, save
from winnow.data.inspect import inspect_file

SEED = Path(__file__).parent / "data" / "self_instruct_seed_tasks.jsonl"
SEED_MAP = "instruction=instruction,input=instances.0.input,output=instances.0.output"


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _alpaca(path: Path, n: int = 3) -> Path:
    return _jsonl(path, [{"instruction": f"q{i}", "input": f"in{i}", "output": f"a{i}"} for i in range(n)])


# 1. a --map path that no row has


def test_mapped_path_in_no_row_is_an_error_with_the_closest_field():
    with pytest.raises(DataError, match=r"seed_tasks\.jsonl: column map entry input=instances\.0\.inptu: no row "
                                        r"has the field 'instances\.0\.inptu'; did you mean 'instances\.0\.input'\?"):
        load(SEED, column_map={"instruction": "instruction", "input": "instances.0.inptu",
                               "output": "instances.0.output"})


def test_inspect_stops_on_a_mistyped_map_entry(tmp_path):
    src = _alpaca(tmp_path / "a.jsonl")
    given = "instruction=instruction,input=inptu,output=output"
    result = CliRunner().invoke(app, ["inspect", str(src), "--map", given])
    assert result.exit_code == 2
    assert "a.jsonl: column map entry input=inptu: no row has the field 'inptu'; did you mean 'input'?" in result.output


def test_inspect_counts_rows_missing_an_optional_mapped_field(tmp_path):
    rows = [{"q": "a", "extra": {"ctx": "c"}, "r": "x"}, {"q": "b", "r": "y"}, {"q": "c", "extra": {}, "r": "z"}]
    src = _jsonl(tmp_path / "p.jsonl", rows)
    found = inspect_file(src, column_map={"instruction": "q", "input": "extra.ctx", "output": "r"})
    assert found.valid == 3 and found.map_missing == {"input": ("extra.ctx", 2)}
    assert "map input=extra.ctx: missing in 2 of 3 rows (read as empty)" in found.lines()


def test_unknown_id_column_is_named_too(tmp_path):
    with pytest.raises(DataError, match=r"id column 'uid': no row has the field 'uid'; did you mean 'id'"):
        load(_jsonl(tmp_path / "a.jsonl", [{"id": "1", "instruction": "q", "output": "a"}]), id_column="uid")


# 2. auto-detection that would leave data unread


def test_seed_tasks_are_not_taken_for_a_prompt_pool(tmp_path):
    with pytest.raises(DataError, match=rf"column 'instances' \(nested data\) would be left unread.*--map {SEED_MAP}"):
        load(SEED)
    found = inspect_file(SEED)
    assert found.layout is None and found.suggested_map == SEED_MAP
    assert any(line.startswith("not read as it stands:") for line in found.lines())
    read = load(SEED, column_map=dict(p.split("=") for p in SEED_MAP.split(",")))
    assert read.layout == "alpaca" and len(read.samples) == 175 and read.samples[0].alpaca[2]
    assert load(SEED, layout="prompt").layout == "prompt"  # named: unread on purpose


def test_question_good_bad_is_not_a_prompt_pool(tmp_path):
    src = _jsonl(tmp_path / "gb.jsonl", [{"question": "2+2?", "good": "4", "bad": "5"}] * 2)
    with pytest.raises(DataError, match=r"'good' \(response-like text\), 'bad' \(response-like text\).*"
                                        r"--map prompt=question,chosen=good,rejected=bad"):
        load(src)
    assert load(src, column_map={"prompt": "question", "chosen": "good", "rejected": "bad"}).layout == "preference"


def test_scalar_metadata_and_judge_columns_stay_quiet(tmp_path):
    alpaca = _jsonl(tmp_path / "a.jsonl", [{"id": 1, "source": "x", "instruction": "q", "input": "", "output": "a",
                                           "meta": {"lang": "en"}}])
    assert load(alpaca).layout == "alpaca"
    pool = _jsonl(tmp_path / "p.jsonl", [{"id": "1", "prompt": "q", "category": "math", "instag_tags": ["t"],
                                          "instag_raw": {"x": [1]}, "instag_status": "ok"}])
    assert load(pool).layout == "prompt"  # a tagged pool reads back as a pool


# 3. empty responses and judges that read them


def _sg(*turns: tuple[str, str]) -> dict:
    return {"conversations": [{"from": who, "value": text} for who, text in turns]}


@pytest.mark.parametrize(("good", "empty", "field", "message"), [
    ({"instruction": "q", "output": "a"}, {"instruction": "q", "output": "   "}, "output", "empty response"),
    (_sg(("human", "q"), ("gpt", "a")), _sg(("human", "q"), ("gpt", "")), "conversations.1.value", "empty response"),
    (_sg(("human", "q"), ("gpt", "a")), _sg(("human", "q"), ("gpt", "a"), ("human", "and?")),
     "conversations", "ends with a user turn that has no answer"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
     {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]},
     "messages.1.content", "empty response"),
])
def test_empty_response_is_a_bad_row_for_judges_that_read_it(tmp_path, good, empty, field, message):
    src = _jsonl(tmp_path / "d.jsonl", [good, empty])
    assert len(load(src).samples) == 2  # judges that read the user turns alone still get the row
    with pytest.raises(DataError, match=rf"d\.jsonl: line 2, field '{field}': .*{message}"):
        load(src, need_response=True)
    skipped = load(src, need_response=True, on_bad_row="skip")
    assert len(skipped.samples) == 1 and [(b.line, b.field) for b in skipped.bad_rows] == [(2, field)]


def test_empty_csv_cell_and_prompt_pools(tmp_path):
    src = tmp_path / "d.csv"
    src.write_text("instruction,input,output\nq1,,a1\nq2,,\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.csv: line 3, field 'output': empty response"):
        load(src, need_response=True)
    pool = _jsonl(tmp_path / "p.jsonl", [{"prompt": "a"}, {"prompt": "b"}])
    assert len(load(pool, need_response=True).samples) == 2  # a pool: the caller names the judges that fit


def test_rate_refuses_empty_responses_before_any_request(fake_server, tmp_path):
    src = _jsonl(tmp_path / "d.jsonl", [{"instruction": "q", "output": "a"}, {"instruction": "r", "output": ""}])
    before = fake_server.total
    with pytest.raises(DataError, match=r"d\.jsonl: line 2, field 'output': empty response"):
        rate(src, ["alpagasus"], "openai/judge", api_base=fake_server.url, cache_dir=tmp_path / "c")
    assert fake_server.total == before
    done = rate(src, ["alpagasus"], "openai/judge", api_base=fake_server.url, cache_dir=tmp_path / "c",
                on_bad_row="skip")
    assert len(done.rows) == 1 and [(b.line, b.field) for b in done.bad_rows] == [(2, "output")]
    tagged = rate(src, ["instag"], "openai/judge", api_base=fake_server.url, cache_dir=tmp_path / "c")
    assert len(tagged.rows) == 2  # InsTag reads the request alone


def test_inspect_counts_empty_responses(tmp_path):
    src = _jsonl(tmp_path / "d.jsonl", [{"instruction": "q", "output": "a"}, {"instruction": "r", "output": ""}])
    found = inspect_file(src)
    assert "alpagasus" not in found.judges_ok and "line 2, field 'output'" in found.judges_not["alpagasus"]


# 5. inspect: wrapped records, a JSON array named .jsonl, two unnamed columns


@pytest.mark.parametrize("indent", [None, 2])
def test_records_wrapped_in_an_object_say_how_to_unwrap(tmp_path, indent):
    src = tmp_path / "obj.json"
    src.write_text(json.dumps({"data": [{"instruction": "q", "output": "a"}] * 3}, indent=indent))
    with pytest.raises(DataError, match=r"(?s)obj\.json: is one JSON object holding 3 records under 'data'.*python -c"):
        load(src)
    if indent is None:
        found = inspect_file(src)
        assert found.suggested_map is None and "holding 3 records under 'data'" in (found.problem or "")


def test_pretty_json_array_named_jsonl_is_read_as_an_array(tmp_path):
    src = tmp_path / "arr.jsonl"
    src.write_text(json.dumps([{"instruction": "q", "output": "a"}] * 4, indent=1))
    ds = load(src)
    assert (ds.format, len(ds.samples), ds.bad_rows) == ("json", 4, [])
    broken = tmp_path / "broken.jsonl"
    broken.write_text(src.read_text()[:-3])
    with pytest.raises(DataError, match=r"broken\.jsonl: .*cannot be read past this point"):
        load(broken)


def test_suggested_map_reads_request_and_response_by_name(tmp_path):
    src = _jsonl(tmp_path / "qa2.jsonl", [{"q": "short?", "resp": "a much longer answer here"}] * 2)
    assert inspect_file(src).suggested_map == "instruction=q,output=resp"


# 6. output names with no format


@pytest.mark.parametrize("name", ["x.xlsx", "x.jsonl.gz"])
def test_unknown_output_suffix_is_refused_before_judging(fake_server, tmp_path, name):
    src = _alpaca(tmp_path / "a.jsonl")
    before = fake_server.total
    with pytest.raises(DataError, match=r"cannot write a '\.(xlsx|gz)' file.*one of: \.csv, \.json, \.jsonl"):
        rate(src, ["alpagasus"], "openai/judge", api_base=fake_server.url, cache_dir=tmp_path / "c",
             output=tmp_path / name)
    assert fake_server.total == before and not (tmp_path / name).exists()
    with pytest.raises(DataError, match="cannot write"):
        save(load(src).rows, tmp_path / name, like=load(src))
