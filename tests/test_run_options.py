"""What a run is asked to do is what it does: misspelt judge names and options are errors, not
defaults; both sides of a preference row get every column one side would get.

Each case here was a silent surprise found by trying the CLI as a user: ``--judge-model
alpagsus=...`` judged with the run's model, ``--judge-option dimensoin=...`` rated accuracy,
``--side both`` with the DEITA judges wrote no ``deita_score``, and a pipeline with
``side: both`` wrote half its outputs and then crashed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from winnow.api import rate
from winnow.audit.costs import estimate
from winnow.cli.app import app
from winnow.judges.registry import UnknownJudgeOption, accepted_options
from winnow.pipeline import Pipeline, PipelineError

SHAPES = Path(__file__).parent / "data" / "shapes"
ROWS = [{"instruction": f"Add {i} and 2.", "input": "", "output": str(i + 2)} for i in range(6)]


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_a_misspelt_judge_model_is_refused_before_any_request(fake_server, write_jsonl, tmp_path):
    data = write_jsonl(ROWS)
    before = fake_server.total
    code, out = _cli("rate", str(data), "--judge", "alpagasus", "--model", "openai/judge",
                     "--api-base", fake_server.url, "--judge-model", "alpagsus=openai/other",
                     "--cache-dir", str(tmp_path / "c"), "-q")
    assert code != 0
    assert "alpagsus" in out and "did you mean 'alpagasus'" in out
    assert fake_server.total == before
    with pytest.raises(ValueError, match="no judge of this run is called 'instag'"):
        estimate(data, ["alpagasus"], "openai/judge", judge_models={"instag": "openai/other"},
                 cache_dir=tmp_path / "c")


def test_a_judge_model_names_its_judge_in_either_spelling(fake_server, write_jsonl, tmp_path):
    data = write_jsonl(ROWS)
    result = rate(data, ["alpagasus", "deita-quality"], "openai/judge", api_base=fake_server.url,
                  judge_models={"deita-quality": "openai/other", "alpagasus": "openai/judge"},
                  cache_dir=tmp_path / "c")
    assert {r["alpagasus_status"] for r in result.rows} == {"ok"}
    assert {r["deita_quality_status"] for r in result.rows} == {"ok"}


def test_a_judge_option_no_judge_takes_is_refused(fake_server, write_jsonl, tmp_path):
    data = write_jsonl(ROWS)
    code, out = _cli("rate", str(data), "--judge", "alpagasus", "--judge", "instag", "--model", "openai/judge",
                     "--api-base", fake_server.url, "--judge-option", "dimensoin=helpfulness",
                     "--cache-dir", str(tmp_path / "c"), "-q")
    assert code != 0 and "dimensoin" in out and "did you mean 'dimension'" in out
    # an option that one judge of the run takes is fine for the run (one option set for all)
    result = rate(data, ["alpagasus", "instag"], "openai/judge", api_base=fake_server.url,
                  judge_options={"dimension": "helpfulness"}, cache_dir=tmp_path / "c")
    assert {r["alpagasus_status"] for r in result.rows} == {"ok"}
    with pytest.raises(UnknownJudgeOption, match="mode"):
        rate(data, ["alpagasus"], "openai/judge", api_base=fake_server.url, judge_options={"mode": "evol"},
             cache_dir=tmp_path / "c")


def test_a_judge_named_twice_is_refused(write_jsonl, tmp_path):
    with pytest.raises(ValueError, match="alpagasus named twice"):
        rate(write_jsonl(ROWS), ["alpagasus", "alpagasus"], "openai/judge", api_base="http://127.0.0.1:9/v1",
             cache_dir=tmp_path / "c")


def test_accepted_options_per_judge():
    assert accepted_options("alpagasus") == {"dimension", "structured"}
    assert "mode" in accepted_options("deita-complexity")
    assert accepted_options("path/to/judge.yaml") == {"structured"}


def test_pipeline_options_belong_to_their_judge(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text("input: data.jsonl\nmodel: openai/judge\n"
                    "judges:\n  - name: alpagasus\n    options: {dimensoin: helpfulness}\n")
    with pytest.raises(PipelineError, match=r"p\.yaml: judges\.0.*dimensoin.*did you mean 'dimension'"):
        Pipeline.from_yaml(spec)
    # instag takes no 'dimension', even though another judge of the pipeline would
    with pytest.raises(ValueError, match="no such option for instag"):
        Pipeline(input="x.jsonl", judges=[{"name": "alpagasus", "options": {"dimension": "helpfulness"}},
                                          {"name": "instag", "options": {"dimension": "helpfulness"}}])


def test_a_pipeline_on_both_sides_is_refused_before_it_writes(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text(f"input: {SHAPES / 'preference_pairs.jsonl'}\nmodel: openai/judge\nside: both\n"
                    "judges: [alpagasus]\nselect: {method: threshold, top_k: 2}\n"
                    f"outputs: {{dir: {tmp_path / 'out'}}}\n")
    code, out = _cli("run", str(spec))
    assert code != 0 and "side must be chosen or rejected" in out and "--side both" in out
    assert not (tmp_path / "out").exists()


def test_both_sides_get_a_deita_score(fake_server, tmp_path):
    path = SHAPES / "preference_pairs.jsonl"
    out = tmp_path / "both.jsonl"
    result = rate(path, ["deita-complexity", "deita-quality"], "openai/judge", api_base=fake_server.url,
                  side="both", output=out, cache_dir=tmp_path / "c")
    assert "chosen_deita_score" in result.columns and "rejected_deita_score" in result.columns
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(written) == len(result.rows) > 0
    for row in written:
        for side in ("chosen_", "rejected_"):
            assert row[f"{side}deita_complexity_status"] == "ok" and row[f"{side}deita_quality_status"] == "ok"
            c, q = row[f"{side}deita_complexity_scores"], row[f"{side}deita_quality_scores"]
            assert row[f"{side}deita_score"] == pytest.approx(sum(a * b for a, b in zip(c, q, strict=True)))
        assert "deita_score" not in row


def test_a_misspelt_transport_is_refused_even_when_everything_is_cached(fake_server, write_jsonl, tmp_path):
    data = write_jsonl(ROWS)
    rate(data, ["alpagasus"], "openai/judge", api_base=fake_server.url, cache_dir=tmp_path / "c")
    code, out = _cli("rate", str(data), "--judge", "alpagasus", "--model", "openai/judge", "--api-base",
                     fake_server.url, "--transport", "fastt", "--cache-dir", str(tmp_path / "c"), "-q")
    assert code != 0 and "unknown transport 'fastt'" in out


def test_rate_without_an_output_says_where_the_judgments_are(fake_server, write_jsonl, tmp_path):
    code, out = _cli("rate", str(write_jsonl(ROWS)), "--judge", "alpagasus", "--model", "openai/judge",
                     "--api-base", fake_server.url, "--cache-dir", str(tmp_path / "c"), "-q")
    assert code == 0 and "no file was written: the judgments are cached" in out


def test_a_dry_run_without_a_price_does_not_claim_zero_dollars(write_jsonl, tmp_path):
    code, out = _cli("rate", str(write_jsonl(ROWS)), "--judge", "alpagasus", "--model", "openai/no-such-priced-model",
                     "--api-base", "http://127.0.0.1:9/v1", "--cache-dir", str(tmp_path / "c"), "--dry-run")
    assert code == 0, out
    assert "cost unknown (no listed price)" in out and "$0.0000" not in out


def test_a_max_cost_that_cannot_be_enforced_is_refused(fake_server, write_jsonl, tmp_path):
    """openai/judge has no listed price: every call counts as $0 and the cap would never stop."""
    data = write_jsonl(ROWS)
    code, out = _cli("rate", str(data), "--judge", "alpagasus", "--model", "openai/judge", "--api-base",
                     fake_server.url, "--max-cost", "0.01", "--cache-dir", str(tmp_path / "c"), "-q")
    assert code == 2 and "--max-cost 0.01 cannot be enforced: no listed price for openai/judge" in out
    assert fake_server.total == 0
    for value in ("0", "-1"):
        code, out = _cli("rate", str(data), "--judge", "alpagasus", "--model", "openai/gpt-4o-mini", "--api-base",
                         fake_server.url, "--max-cost", value, "--cache-dir", str(tmp_path / "c"), "-q")
        assert code == 2 and "--max-cost must be more than 0" in out


def test_engine_settings_that_would_hang_or_spin_are_refused():
    from winnow.engine.config import EngineSettings

    for bad, words in (({"timeout": 0}, "--timeout"), ({"concurrency": 0}, "--concurrency"),
                       ({"max_retries": -1}, "--max-retries"), ({"rpm": 0}, "--rpm"), ({"max_cost": -1}, "--max-cost")):
        with pytest.raises(ValueError, match=words):
            EngineSettings(**bad)
    EngineSettings(max_cost=0.0)  # the engine's own "send nothing": allowed in Python


def test_a_run_where_no_row_got_a_judgment_exits_1(write_jsonl, tmp_path):
    from tests.fakeserver import FakeServer

    with FakeServer(faults={"500": 1.0}) as failing:
        code, out = _cli("rate", str(write_jsonl(ROWS)), "--judge", "alpagasus", "--model", "openai/judge",
                         "--api-base", failing.url, "--max-retries", "1", "--cache-dir", str(tmp_path / "c"),
                         "-o", str(tmp_path / "out.jsonl"), "-q")
    assert code == 1 and "no row got a judgment" in out
    assert "alpagasus: 0 ok, 6 judge_failed" in out
    assert (tmp_path / "out.jsonl").is_file()  # the rows and their reasons are still written


def test_judges_show_refuses_a_row_without_a_response_for_a_judge_that_reads_one():
    prompts = str(SHAPES / "koala_prompts.jsonl")
    code, out = _cli("judges", "show", "alpagasus", "--data", prompts)
    assert code == 2 and "has no response, and alpagasus judges one" in out
    code, out = _cli("judges", "show", "instag", "--data", prompts)
    assert code == 0 and "--- prompt for" in out
    code, out = _cli("judges", "show", "alpagasus", "--mode", "evol")
    assert code == 2 and "--mode does not apply to alpagasus" in out


def test_run_takes_an_api_key_and_writes_it_nowhere(write_jsonl, tmp_path):
    from tests.fakeserver import FakeServer

    key = "sk-PIPELINE-0123456789abcdef"
    data = write_jsonl(ROWS)
    spec = tmp_path / "p.yaml"
    spec.write_text(f"input: {data}\nmodel: openai/judge\njudges: [alpagasus]\n"
                    "select: {method: threshold, top_k: 3}\n"
                    f"outputs: {{dir: {tmp_path / 'out'}}}\n")
    with FakeServer(api_key=key) as srv:
        code, out = _cli("run", str(spec), "--api-base", srv.url, "--cache-dir", str(tmp_path / "c"), "-q")
        assert code != 0 and key not in out  # the server wants the key
        code, out = _cli("run", str(spec), "--api-base", srv.url, "--api-key", key,
                         "--cache-dir", str(tmp_path / "c"), "-q")
        assert code == 0, out
    assert len((tmp_path / "out" / "subset.jsonl").read_text().splitlines()) == 3
    written = b"".join(p.read_bytes() for folder in ("out", "c") for p in (tmp_path / folder).rglob("*")
                       if p.is_file())
    assert key.encode() not in written and key not in out


def _pipeline(tmp_path: Path, body: str, rows: list[dict] | None = None) -> Path:
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in (rows or ROWS)))
    spec = tmp_path / "p.yaml"
    spec.write_text(f"input: data.jsonl\nmodel: openai/judge\noutputs: {{dir: out}}\n{body}")
    return spec


@pytest.mark.parametrize(("body", "words"), [
    ("judges: [alpagasus]\nselect: {method: threshold, score_column: alpagasus_scor, top_k: 2}\n",
     "select.score_column 'alpagasus_scor': no judge of this pipeline writes it"),
    ("judges: [alpagasus]\nselect: {method: threshold, top_frac: 1.5}\n", "select.top_frac must be"),
    ("judges: [instag]\nselect: {method: instag, budget: -3}\n", "select.budget must be"),
    ("judges: [instag]\nselect: {method: deita, budget: 3}\n", "select.score_column 'deita_score'"),
    ("judges: [alpagasus]\nnormalize: {}\n", "normalize.tags_column 'instag_tags'"),
    ("judges: [instag]\nnormalize: {alpha: 0}\n", "normalize.alpha"),
])
def test_a_pipeline_step_that_cannot_run_is_refused_before_any_request(fake_server, tmp_path, body, words):
    spec = _pipeline(tmp_path, body)
    code, out = _cli("run", str(spec), "--api-base", fake_server.url, "--cache-dir", str(tmp_path / "c"), "-q")
    assert code == 2 and words in " ".join(out.split()), out
    assert fake_server.total == 0


def test_a_pipeline_may_select_on_a_column_the_input_already_has(fake_server, tmp_path):
    rows = [{**r, "quality": i} for i, r in enumerate(ROWS)]
    spec = _pipeline(tmp_path, "judges: [instag]\nselect: {method: threshold, score_column: quality, top_k: 2}\n", rows)
    code, out = _cli("run", str(spec), "--api-base", fake_server.url, "--cache-dir", str(tmp_path / "c"), "-q")
    assert code == 0, out
    assert [json.loads(x)["quality"] for x in (tmp_path / "out" / "subset.jsonl").read_text().splitlines()] == [5, 4]


def test_dry_run_of_a_pipeline_counts_the_rows_the_run_judges(tmp_path):
    rows = [*ROWS, {"instruction": "", "input": "", "output": "x"}]
    spec = _pipeline(tmp_path, "judges: [alpagasus]\nlimit: 4\non_bad_row: skip\n", rows)
    code, out = _cli("run", str(spec), "--api-base", "http://127.0.0.1:9/v1", "--dry-run",
                     "--cache-dir", str(tmp_path / "c"))
    assert code == 0, out
    assert "dry run: 4 rows" in out and "(no listed price)" in out


def test_pipeline_paths_expand_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spec = tmp_path / "elsewhere" / "p.yaml"
    spec.parent.mkdir()
    spec.write_text("input: ~/data.jsonl\ncache_dir: ~/cache\njudges: [alpagasus]\n")
    loaded = Pipeline.from_yaml(spec)
    assert loaded.input == str(tmp_path / "home" / "data.jsonl")
    assert loaded.cache_dir == str(tmp_path / "home" / "cache")


def test_input_columns_a_judge_replaces_are_named(fake_server, write_jsonl, tmp_path):
    rows = [{**r, "alpagasus_score": 9.9} for r in ROWS]
    code, out = _cli("rate", str(write_jsonl(rows)), "--judge", "alpagasus", "--model", "openai/judge",
                     "--api-base", fake_server.url, "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "o.jsonl"))
    assert code == 0 and "the input already had alpagasus_score (6 rows): replaced" in out


def test_a_prompt_shared_by_rows_counts_once_as_new_and_then_as_answered(fake_server, write_jsonl, tmp_path):
    rows = [{"instruction": "Same question?", "input": "", "output": "Same answer."} for _ in range(8)]
    result = rate(write_jsonl(rows), ["alpagasus"], "openai/judge", api_base=fake_server.url,
                  cache_dir=tmp_path / "c")
    assert result.stats.calls == 1 and result.stats.calls + result.stats.cache_hits == 8


def test_a_pipelines_report_has_the_trust_section(fake_server, alpaca_rows, tmp_path):
    spec = _pipeline(tmp_path, "judges: [alpagasus]\nselect: {method: threshold, top_k: 5}\n", alpaca_rows[:30])
    code, out = _cli("run", str(spec), "--api-base", fake_server.url, "--cache-dir", str(tmp_path / "c"), "-q")
    assert code == 0, out
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="trust"' in html and "score against response length" in html


def test_a_pipelines_bad_row_hint_names_its_files_key(tmp_path):
    spec = _pipeline(tmp_path, "judges: [alpagasus]\n")
    (tmp_path / "data.jsonl").write_text('{"instruction": "a", "output": "b"}\nnot json\n')
    code, out = _cli("run", str(spec), "--api-base", "http://127.0.0.1:9/v1", "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and "on_bad_row: skip" in out and "--on-bad-row" not in out
