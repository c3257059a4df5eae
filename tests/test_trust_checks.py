"""The trust audits check what they are given (exploratory findings 12-21): the judge's column and
scale, the labels and how they join, the options, the original judgments stability compares
with, the files report --trust reads, and the evidence a "trust" verdict needs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import winnow.cli.agree
import winnow.cli.audit
import winnow.cli.reparse
import winnow.cli.report  # noqa: F401  (these register the commands under test)
from winnow.audit.agree import agree_rows
from winnow.audit.bias import bias_report
from winnow.audit.trust_section import verdict
from winnow.cli.app import app
from winnow.data import load

HALVES = [2.5, 3.0, 3.5, 4.0, 4.5, 5.0]

HELPFULNESS = """name: helpfulness
template: prompt.jinja
output:
  fields:
    score: {type: number, min: 1, max: 10}
    reason: string
structured: false
"""

MULTI = """name: multi
template: prompt.jinja
output:
  fields:
    relevance: {type: number, min: 1, max: 10}
    clarity: {type: number, min: 1, max: 10}
    comment: string
score_field: relevance
structured: true
"""


def _cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result.output


def _judge_dir(tmp_path: Path, text: str, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "judge.yaml").write_text(text)
    (folder / "prompt.jinja").write_text("Rate this answer.\n{{ instruction }}\n{{ output }}\n")
    return folder


def _scored(n: int = 40, column: str = "alpagasus_score", **extra: object) -> list[dict]:
    rows = []
    for i in range(n):
        score = HALVES[(i * 7) % 6]
        rows.append({"instruction": f"Question {i}?", "input": "", "output": "x" * (10 + i), column: score,
                     column.rsplit("_", 1)[0] + "_status": "ok", "human": 1 + (i * 7) % 6 // 2 + (i % 2),
                     **extra})
    return rows


# 12 -------------------------------------------------------------------------------------------
def test_a_sides_column_is_measured_on_its_judges_scale(write_jsonl):
    plain = write_jsonl(_scored(), "plain.jsonl")
    sided = write_jsonl(_scored(column="chosen_alpagasus_score"), "sided.jsonl")
    a = json.loads(_cli("agree", str(plain), "--judge", "alpagasus", "--labels", "human", "--json",
                        "--resamples", "50"))
    b = json.loads(_cli("agree", str(sided), "--score-column", "chosen_alpagasus_score", "--labels", "human",
                        "--json", "--resamples", "50"))
    assert b["bins"] == a["bins"] == [f"{i / 2:g}" for i in range(11)]  # AlpaGasus' 0-5 in half points
    assert b["figures"]["quadratic_kappa"] == pytest.approx(a["figures"]["quadratic_kappa"])
    assert "alpagasus's scale" in b["scale"]
    c = json.loads(_cli("agree", str(sided), "--judge", "alpagasus", "--labels", "human", "--json",
                        "--resamples", "0"))  # --judge finds the side's column too
    assert c["score_column"] == "chosen_alpagasus_score"


# 13 -------------------------------------------------------------------------------------------
def test_a_user_judge_is_scored_on_its_declared_scale_and_the_output_says_so(write_jsonl, tmp_path):
    data = write_jsonl(_scored(column="helpfulness_score"))
    folder = _judge_dir(tmp_path, HELPFULNESS, "helpfulness")
    out = _cli("agree", str(data), "--judge", "helpfulness", "--user-judge", str(folder), "--labels", "human",
               "--resamples", "50")
    assert "judge's scale: 1-10 in steps of 0.5 (helpfulness's declared score range (judge.yaml))" in out
    assert "/ 9.5 / 10" in out  # the bins span the declared range, half points kept
    by_path = _cli("agree", str(data), "--judge", str(folder), "--labels", "human", "--resamples", "50")
    assert "1-10 in steps of 0.5" in by_path  # --judge PATH, as rate takes it
    undeclared = _cli("agree", str(data), "--judge", "helpfulness", "--labels", "human", "--resamples", "0")
    assert "2.5-5 in steps of 0.5 (the observed range: helpfulness's scale is not declared" in undeclared


# 14 -------------------------------------------------------------------------------------------
def test_a_labels_file_with_conflicting_duplicates_is_refused_and_unmatched_rows_are_reported(write_jsonl):
    judged = write_jsonl(_scored(10), "judged.jsonl")
    base = [{"instruction": f"Question {i}?", "input": "", "output": "x" * (10 + i), "label": i % 5}
            for i in range(10)]
    conflicting = write_jsonl([*base, dict(base[2], label=4)], "conflict.jsonl")
    out = _cli("agree", str(judged), "--judge", "alpagasus", "--labels", "label", "--labels-file",
               str(conflicting), code=2)
    assert "conflict.jsonl: rows 3 and 11 label the same sample" in out and "keep one" in out
    agreeing = write_jsonl([*base, dict(base[2])], "dup_same.jsonl")  # the same label twice: fine
    _cli("agree", str(judged), "--judge", "alpagasus", "--labels", "label", "--labels-file", str(agreeing),
         "--resamples", "0")
    stray = [{"instruction": f"Elsewhere {i}", "input": "", "output": "y", "label": 1} for i in range(7)]
    extra = write_jsonl(base + stray, "extra.jsonl")
    out = _cli("agree", str(judged), "--judge", "alpagasus", "--labels", "label", "--labels-file", str(extra),
               "--resamples", "0")
    assert "7 of 17 rows of" in out and "match no judged row" in out and "rows 11, 12, 13, 14, 15 and 2 more" in out


# 15 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["--threshold", "4.5", "--budget", "10"], "--threshold and --budget: give one"),
    (["--label-scale", "5,1"], "--label-scale 5,1: LO must be below HI"),
    (["--label-scale", "3,3"], "--label-scale 3,3: LO must be below HI"),
    (["--label-scale", "1,3"], "labels outside --label-scale 1,3: rows"),
])
def test_contradictory_options_and_labels_off_the_scale_are_refused(write_jsonl, args, words):
    data = write_jsonl(_scored())
    out = _cli("agree", str(data), "--judge", "alpagasus", "--labels", "human", "--resamples", "0", *args, code=2)
    assert words in out


def test_an_unreadable_label_is_counted_apart_with_its_row():
    rows = _scored(12)
    rows[4]["human"] = "n/a"
    rows[7]["human"] = None
    result = agree_rows(rows, "alpagasus_score", "human", resamples=0)
    assert result.left_out == {"unreadable label": 1, "no label": 1} and result.n == 10
    assert any("row 5 ('n/a')" in note for note in result.notes)


# 16 -------------------------------------------------------------------------------------------
def test_wrong_names_are_named_and_a_user_judges_score_field_is_used(write_jsonl, tmp_path):
    data = write_jsonl(_scored())
    out = _cli("agree", str(data), "--judge", "alpagasus", "--labels", "humn", code=2)
    assert "--labels humn" in out and "did you mean 'human'?" in out and "0 rows" not in out
    out = _cli("agree", str(data), "--judge", "alpagsus", "--labels", "human", code=2)
    assert "no judge 'alpagsus'" in out and "did you mean 'alpagasus'?" in out
    rows = [dict(r, multi_relevance=r["alpagasus_score"], multi_status="ok") for r in _scored()]
    multi = write_jsonl([{k: v for k, v in r.items() if not k.startswith("alpagasus")} for r in rows], "m.jsonl")
    out = _cli("agree", str(multi), "--judge", "multi", "--labels", "human", code=2)
    assert "no multi_score column" in out and "multi_relevance" in out and "--user-judge" in out
    folder = _judge_dir(tmp_path, MULTI, "multi")
    report = json.loads(_cli("agree", str(multi), "--judge", "multi", "--user-judge", str(folder), "--labels",
                             "human", "--json", "--resamples", "0"))
    assert report["score_column"] == "multi_relevance" and report["n"] == 40


# 17 -------------------------------------------------------------------------------------------
def test_stability_refuses_originals_of_another_model_and_records_what_it_measured(
        alpaca_rows, write_jsonl, tmp_path, fake_server):
    from winnow.api import rate

    data = write_jsonl(alpaca_rows[:12])
    judged, cache = tmp_path / "judged.jsonl", tmp_path / "c"
    rate(data, ["alpagasus"], "openai/model-a", api_base=fake_server.url, cache_dir=cache, output=judged)
    common = ["audit", "stability", str(judged), "--judge", "alpagasus", "--api-base", fake_server.url,
              "--cache-dir", str(cache), "--sample", "6", "--repeats", "2"]
    out = _cli(*common, "--model", "openai/model-b", code=2)
    assert "6 of 6 sampled rows' scores are not confirmed" in out and "not test-retest" in out
    out = _cli(*common, "--model", "openai/model-a", "--judge-option", "dimension=helpfulness", code=2)
    assert "dimension=helpfulness" in out  # another prompt: not the original judgment either
    forced = CliRunner().invoke(app, [*common, "--model", "openai/model-b", "--unconfirmed-original", "--json"])
    assert forced.exit_code == 0 and "warning: 6 of 6" in forced.output
    report = json.loads(_cli(*common, "--model", "openai/model-a", "--json"))
    assert report["originals"] == {"confirmed": 6, "differs": 0, "not in cache": 0} and not report["warnings"]
    assert report["provenance"]["model"] == "openai/model-a" and len(report["provenance"]["data"]["sha256"]) == 64
    assert report["provenance"]["judge_fingerprint"] and report["provenance"]["data"]["file"] == str(judged)


def test_stability_of_a_user_judge_reads_its_score_field_and_says_why_no_selection_figure(
        alpaca_rows, write_jsonl, tmp_path, fake_server):
    from winnow.api import rate

    folder = _judge_dir(tmp_path, MULTI, "multi")
    data = write_jsonl(alpaca_rows[:10])
    judged, cache = tmp_path / "judged.jsonl", tmp_path / "c"
    rate(data, [str(folder)], "openai/m", api_base=fake_server.url, cache_dir=cache, output=judged)
    out = _cli("audit", "stability", str(judged), "--judge", str(folder), "--model", "openai/m", "--api-base",
               fake_server.url, "--cache-dir", str(cache), "--sample", "5", "--repeats", "2")
    assert "0 repeat judgments failed" in out  # read from `relevance`, not a missing `score`
    assert "selected rows that stay selected: absent (no --threshold, and multi has no default" in out


# 18 -------------------------------------------------------------------------------------------
def test_bias_names_unknown_judges_and_columns_and_counts_rows_without_a_source(write_jsonl, tmp_path):
    rows = _scored(30, generator="model-a")
    for row in rows[:4]:
        del row["generator"]
    data = write_jsonl(rows)
    out = _cli("audit", "bias", str(data), "--judge", "alpagsus", code=2)
    assert "no judge 'alpagsus'" in out and "did you mean 'alpagasus'?" in out
    out = _cli("audit", "bias", str(data), "--judge", "alpagasus", "--source-column", "generatr", code=2)
    assert "--source-column generatr" in out and "did you mean 'generator'?" in out
    out = _cli("audit", "bias", str(data), "--judge", "alpagasus", "--source-column", "generator",
               "--resamples", "50")
    assert "4 judged rows have no generator: left out of the per-source means" in out
    assert "over 26 rows" in out
    multi = write_jsonl([dict(r, multi_relevance=r["alpagasus_score"], multi_status="ok") for r in rows], "m.jsonl")
    folder = _judge_dir(tmp_path, MULTI, "multi")
    out = _cli("audit", "bias", str(multi), "--judge", str(folder), "--resamples", "50")
    assert out.startswith("multi: 30 judged rows\n")  # no "30 failed": the declared score field is read
    report = bias_report(load(multi).samples, "multi", resamples=0)
    assert report.left_out == 0 and report.no_score == 30  # a missing column is not a failed judgment


# 19 -------------------------------------------------------------------------------------------
def test_report_trust_files_are_checked(write_jsonl, tmp_path):
    data = write_jsonl(_scored())
    other = write_jsonl(_scored(35), "other.jsonl")
    agree = tmp_path / "agree.json"
    agree.write_text(_cli("agree", str(data), "--judge", "alpagasus", "--labels", "human", "--json",
                          "--resamples", "20"))
    out = str(tmp_path / "r.html")
    base = ["report", str(data), "-o", out, "--no-cache"]
    assert "--trust nonexist.json: no such file" in _cli(*base, "--trust", "nonexist.json", code=2)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "not valid JSON (line 1" in _cli(*base, "--trust", str(bad), code=2)
    assert "a second agreement file for alpagasus" in _cli(*base, "--trust", str(agree), "--trust", str(agree),
                                                           code=2)
    stray = json.loads(agree.read_text())
    stray["score_column"] = "helpfulness_score"
    (tmp_path / "stray.json").write_text(json.dumps(stray))
    assert "judge 'helpfulness' is not in this report" in _cli(*base, "--trust", str(tmp_path / "stray.json"),
                                                               code=2)
    out_other = _cli("report", str(other), "-o", out, "--no-cache", "--trust", str(agree), code=2)
    assert "whose content differs from the report's pool" in out_other
    _cli(*base, "--trust", str(agree))


# 20 -------------------------------------------------------------------------------------------
def test_trust_needs_more_than_the_length_check(write_jsonl):
    bias = bias_report(load(write_jsonl(_scored())).samples, "alpagasus", resamples=50)
    word, reasons = verdict(bias, None, None)
    assert word == "not enough evidence"
    assert any("missing: agreement with labels" in r for r in reasons)
    assert any("missing: stability" in r for r in reasons)
    good_agreement = {"figures": {"quadratic_kappa": 0.8}, "labels_column": "human"}
    word, reasons = verdict(bias, good_agreement, None)
    assert word == "not enough evidence" and any("missing: stability" in r for r in reasons)
    stable = {"figures": {"selected rows that stay selected": 0.95}}
    assert verdict(bias, good_agreement, stable)[0] == "trust"
    no_threshold = {"figures": {"test-retest Spearman (original vs mean of repeats)": 0.9}}
    word, reasons = verdict(bias, good_agreement, no_threshold)
    assert word == "not enough evidence" and any("without a selection threshold" in r for r in reasons)
    assert verdict(bias, {"figures": {"quadratic_kappa": 0.1}}, None)[0] == "do not trust"  # one problem is enough


# 21 -------------------------------------------------------------------------------------------
def test_every_selection_figure_has_an_interval_or_says_why():
    rows = _scored(60)
    for i, row in enumerate(rows):
        row["human"] = 5 if i < 2 else 1  # the labels keep 2 rows: some resamples keep none
    result = agree_rows(rows, "alpagasus_score", "human", threshold=4.5, resamples=300)
    assert result.intervals["selection_recall"] is not None
    assert "resamples where the figure is defined" in result.interval_notes["selection_recall"]
    bare = agree_rows(rows, "alpagasus_score", "human", threshold=4.5, resamples=0)
    assert all(bare.interval_notes[name] == "no interval: --resamples 0" for name in bare.figures)
    assert "(no interval: --resamples 0)" in "\n".join(bare.lines())


def test_reparse_names_the_judges_the_cache_holds(alpaca_rows, write_jsonl, tmp_path, fake_server):
    from winnow.api import rate

    rate(write_jsonl(alpaca_rows[:3]), ["alpagasus"], "openai/m", api_base=fake_server.url,
         cache_dir=tmp_path / "c", output=tmp_path / "o.jsonl")
    out = _cli("reparse", "--cache-dir", str(tmp_path / "c"), "--judge", "alpagasu", code=2)
    assert "no record of this judge (judges there: alpagasus); did you mean 'alpagasus'?" in out
    _cli("reparse", "--cache-dir", str(tmp_path / "c"), "--judge", "alpagasus")
