"""Every data shape users bring (issue 16), on real rows (tests/data/shapes/, sources in its README).

Each shape is recognised without a column map, round-trips (written back without annotations it
is the input again), is judged through the loopback server with every row ok, and comes back in
its own format with only the judge columns added.  A prompt pool goes the whole way: tagged and
scored, tags normalised, an InsTag subset written in the pool's format; AlpaGasus is refused on it
before any request.  ``winnow inspect`` names each layout, or the --map that reads a file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from winnow.api import PreflightError, rate
from winnow.cli.app import app
from winnow.data import load, save
from winnow.data.inspect import inspect_file
from winnow.engine.config import EngineSettings
from winnow.selection import select
from winnow.tagging import normalize

SHAPES = Path(__file__).parent / "data" / "shapes"
LAYOUT = {  # file -> the layout it must be recognised as, and the judges that fit it
    "koala_prompts.jsonl": ("prompt", ["instag", "deita-complexity"]),
    "vicuna_questions.jsonl": ("prompt", ["instag", "deita-complexity"]),
    "wizardlm_testset.jsonl": ("prompt", ["instag", "deita-complexity"]),
    "ultrachat.jsonl": ("ultrachat", ["alpagasus", "instag", "deita-quality"]),
    "hh_rlhf.jsonl": ("hh", ["alpagasus", "deita-quality"]),
    "preference_pairs.jsonl": ("preference", ["alpagasus", "deita-quality"]),
    "preference_messages.jsonl": ("preference", ["alpagasus", "instag"]),
    "messages_tools.jsonl": ("messages", ["alpagasus", "instag"]),
}
FILES = sorted(LAYOUT)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_shape_has_its_file():
    missing = [name for name in FILES if not (SHAPES / name).is_file()]
    assert not missing, missing


@pytest.mark.parametrize("name", FILES)
def test_recognised_without_a_map_and_round_trips(name, tmp_path):
    path = SHAPES / name
    ds = load(path)
    assert ds.layout == LAYOUT[name][0]
    assert len(ds.samples) == len(_rows(path)) and not ds.bad_rows
    assert all(any(t.role == "user" and t.content.strip() for t in s.turns) for s in ds.samples)
    out = save(ds.rows, tmp_path / name, like=ds)
    back = _rows(out)
    assert back == _rows(path)
    assert [list(r) for r in back] == [list(r) for r in _rows(path)]  # key order kept


@pytest.mark.parametrize("name", FILES)
def test_judged_without_a_map_and_written_back_in_its_shape(name, fake_server, tmp_path):
    path = SHAPES / name
    judges = LAYOUT[name][1]
    out = tmp_path / name
    result = rate(path, judges, "openai/judge", api_base=fake_server.url, cache_dir=tmp_path / "c", output=out,
                  settings=EngineSettings(concurrency=8))
    originals = _rows(path)
    written = _rows(out)
    assert len(written) == len(originals)
    for original, row in zip(originals, written, strict=True):
        assert {k: row[k] for k in original} == original  # every original field, unchanged
        added = set(row) - set(original)
        assert added and all(any(k.startswith(j.replace("-", "_") + "_") for j in judges) for k in added)
        for judge in judges:
            key = judge.replace("-", "_")
            assert row[f"{key}_status"] == "ok", row.get(f"{key}_error")
    assert result.stats.calls > 0


def test_preference_sides(fake_server, tmp_path):
    path = SHAPES / "preference_pairs.jsonl"
    rejected = load(path, side="rejected")
    chosen = load(path)
    first = _rows(path)[0]
    assert chosen.samples[0].turns[-1].content == first["chosen"]
    assert rejected.samples[0].turns[-1].content == first["rejected"]
    both = rate(path, ["alpagasus"], "openai/judge", api_base=fake_server.url, cache_dir=tmp_path / "c",
                side="both", output=tmp_path / "both.jsonl")
    row = both.rows[0]
    assert row["chosen_alpagasus_status"] == "ok" and row["rejected_alpagasus_status"] == "ok"
    assert "alpagasus_score" not in row
    assert both.stats.calls == 2 * len(_rows(path))
    cli = CliRunner().invoke(app, ["rate", str(path), "--judge", "alpagasus", "--side", "both",
                                   "--model", "openai/judge", "--api-base", fake_server.url,
                                   "--cache-dir", str(tmp_path / "c"), "-q"])
    n = len(_rows(path))
    assert cli.exit_code == 0
    assert f"chosen_alpagasus: {n} ok" in cli.output and f"rejected_alpagasus: {n} ok" in cli.output
    hh = rate(SHAPES / "hh_rlhf.jsonl", ["alpagasus"], "openai/judge", api_base=fake_server.url,
              cache_dir=tmp_path / "c", side="rejected")
    assert all(r["alpagasus_status"] == "ok" for r in hh.rows)
    with pytest.raises(ValueError, match="sides belong to preference and hh rows"):
        rate(SHAPES / "koala_prompts.jsonl", ["instag"], "openai/judge", api_base=fake_server.url,
             cache_dir=tmp_path / "c", side="rejected")


def test_prompt_pool_end_to_end(fake_server, tmp_path):
    """Tag and score a pool of prompts, normalise the tags, select with InsTag, write the subset in
    the pool's own format; AlpaGasus is refused before any request, naming what it needs."""
    pool = SHAPES / "koala_prompts.jsonl"
    before = fake_server.total
    with pytest.raises(PreflightError, match=r"alpagasus needs a response to judge .* Judges that read the user "
                                            r"turns alone: deita-complexity, instag"):
        rate(pool, ["alpagasus", "instag"], "openai/judge", api_base=fake_server.url, cache_dir=tmp_path / "c")
    assert fake_server.total == before  # nothing was sent
    judged = tmp_path / "judged.jsonl"
    result = rate(pool, ["instag", "deita-complexity"], "openai/judge", api_base=fake_server.url,
                  cache_dir=tmp_path / "c", output=judged)
    assert all(r["instag_status"] == "ok" and r["deita_complexity_status"] == "ok" for r in result.rows)
    normalized = normalize(judged, output=tmp_path / "normalized.jsonl", alpha=None, association=False)
    assert normalized.output is not None
    subset = select(normalized.output, "instag", budget=3, output=tmp_path / "subset.jsonl")
    written = _rows(tmp_path / "subset.jsonl")
    assert len(written) == 3 and all("prompt" in r and "id" in r for r in written)
    assert not any("never normalised" in note for note in subset.notes)
    originals = {r["id"]: r for r in _rows(pool)}
    assert all(r["prompt"] == originals[r["id"]]["prompt"] for r in written)


def test_cli_refuses_a_judge_that_needs_responses_with_exit_2(fake_server, tmp_path):
    result = CliRunner().invoke(app, ["rate", str(SHAPES / "vicuna_questions.jsonl"), "--judge", "deita-quality",
                                      "--model", "openai/judge", "--api-base", fake_server.url,
                                      "--cache-dir", str(tmp_path / "c"), "-q"])
    assert result.exit_code == 2 and "deita_quality needs a response" in result.output
    assert fake_server.total == 0


@pytest.mark.parametrize("name", FILES)
def test_inspect_names_the_layout(name):
    result = CliRunner().invoke(app, ["inspect", str(SHAPES / name)])
    assert result.exit_code == 0, result.output
    assert f"layout: {LAYOUT[name][0]} (" in result.output and "valid rows:" in result.output


def test_inspect_gives_the_map_when_nothing_is_recognised(tmp_path):
    odd = tmp_path / "qa.jsonl"
    odd.write_text(json.dumps({"q_text": "What is 2+2?", "a_text": "4", "n": 1}) + "\n")
    result = inspect_file(odd)
    assert result.layout is None and result.suggested_map is not None
    qa = tmp_path / "qa2.jsonl"
    qa.write_text(json.dumps({"question": "What is 2+2?", "answer": "4", "meta": 1}) + "\n")
    assert inspect_file(qa).suggested_map == "instruction=question,output=answer"
    mapped = load(qa, column_map={"instruction": "question", "output": "answer"})
    assert mapped.layout == "alpaca"
    cli = CliRunner().invoke(app, ["rate", str(qa), "--judge", "instag", "--model", "openai/x", "-q"])
    assert cli.exit_code == 2 and "winnow inspect" in cli.output and "--map instruction=COL" in cli.output


def test_user_judges_say_what_they_read(tmp_path):
    from winnow.judges.user import UserJudgeError, load_user_judge

    assert load_user_judge(Path("examples/judges/helpfulness")).needs_response  # its template shows `output`
    folder = tmp_path / "clarity"
    folder.mkdir()
    (folder / "prompt.jinja").write_text("Rate how clear this request is, 1-5:\n{{ instruction | data }}\n")
    spec = ("name: clarity\ntemplate: prompt.jinja\noutput:\n  fields:\n    score: {type: number, min: 1, max: 5}\n"
            "columns: [score]\n")
    (folder / "judge.yaml").write_text(spec)
    assert not load_user_judge(folder).needs_response  # the template reads the request alone
    (folder / "judge.yaml").write_text(spec + "needs_response: true\n")
    assert load_user_judge(folder).needs_response  # said explicitly
    (folder / "judge.yaml").write_text(spec + "needs_response: maybe\n")
    with pytest.raises(UserJudgeError, match="needs_response"):
        load_user_judge(folder)


def test_inspect_reads_a_held_out_shape_with_the_map_it_suggests():
    """tau-bench trajectories (messages under `traj`, content null with tool_calls, tool turns with
    a name): not a layout winnow knows; inspect gives the exact --map, and with it every row reads."""
    path = SHAPES / "tau_bench_traj.jsonl"
    found = inspect_file(path)
    assert found.layout is None and found.suggested_map == "messages=traj"
    mapped = inspect_file(path, column_map={"messages": "traj"})
    assert mapped.layout == "messages" and mapped.valid == len(_rows(path)) and not mapped.bad_count
    roles = {role for ex in mapped.examples for role, _ in ex["turns"]}
    assert {"system", "user", "assistant", "tool"} <= roles
    assert "deita-quality" in mapped.judges_ok
