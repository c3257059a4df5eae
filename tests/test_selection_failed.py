"""A failed judgment is never selected, whichever judge's column a selector reads (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from winnow.cli.app import app
from winnow.selection import failed_rows, select_rows


def _row(i: int, score: float | None, tags: list[str] | None, instag: str = "ok", quality: str = "ok") -> dict:
    return {
        "instruction": f"task {i}", "output": f"answer {i}",
        "deita_score": score, "deita_complexity_status": "ok", "deita_quality_status": quality,
        "instag_tags": tags, "instag_status": instag,
    }


def _pool() -> list[dict]:
    # row 1 has the second-best score, but its InsTag tagging failed: tags None -> a zero vector
    return [
        _row(0, 9.0, ["math", "proof"]),
        _row(1, 8.0, None, instag="judge_failed"),
        _row(2, 7.0, ["math", "proof"]),
        _row(3, 6.0, ["poetry"]),
        _row(4, 5.0, ["cooking"]),
        _row(5, 9.5, ["travel"], quality="judge_failed"),
    ]


def test_deita_over_tag_vectors_never_picks_a_failed_tagging():
    result = select_rows(_pool(), "deita", budget=4)
    picked = [row["instruction"] for row in result.rows]
    assert "task 1" not in picked and "task 5" not in picked
    assert picked == ["task 0", "task 3", "task 4"]  # task 2 repeats task 0's tags (cosine 1 > 0.9)
    assert result.details["left_out"] == {"deita_quality": 1, "instag": 1}
    assert "left out 1 rows whose instag judgment failed or is missing" in result.notes


def test_deita_with_a_vector_column_ignores_tag_failures_but_not_score_failures():
    rows = _pool()
    for i, row in enumerate(rows):
        row["vec"] = [1.0, float(i)]
    result = select_rows(rows, "deita", budget=6, embedding_column="vec", threshold=1.0)
    assert result.details["left_out"] == {"deita_quality": 1}  # the vector does not come from tags
    assert {r["instruction"] for r in result.rows} == {"task 0", "task 1", "task 2", "task 3", "task 4"}


def test_instag_never_picks_a_failed_row_and_says_tags_were_not_normalised():
    rows = _pool()
    rows[1]["instag_tags"] = ["a", "b", "c", "d"]  # a failure whose column still holds tags
    result = select_rows(rows, "instag", budget=3)
    assert all(row["instruction"] != "task 1" for row in result.rows)
    assert result.details["left_out"] == {"instag": 1}
    assert any("never normalised" in note and "P-I2" in note for note in result.notes)
    for row in rows:
        row["instag_tags_raw"] = row["instag_tags"]
    again = select_rows(rows, "instag", budget=3)
    assert not any("never normalised" in note for note in again.notes)


def test_threshold_counts_what_it_left_out():
    rows = [{"alpagasus_score": 5.0, "alpagasus_status": "ok"},
            {"alpagasus_score": 5.0, "alpagasus_status": "judge_failed"},
            {"alpagasus_score": None, "alpagasus_status": "judge_failed"}]
    result = select_rows(rows, "threshold")
    assert result.indices == [0] and result.details["left_out"] == {"alpagasus": 2}


def test_failed_rows_reads_only_existing_status_columns():
    assert failed_rows([{"x_score": 1}], ["x_score"]) == (set(), {})
    assert failed_rows([{"x_score": 1, "x_status": "ok"}, {"x_score": 2}], ["x_score"]) == ({1}, {"x": 1})


@pytest.mark.parametrize("method", ["deita", "instag"])
def test_cli_select_reports_rows_left_out(method, tmp_path: Path):
    data = tmp_path / "judged.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in _pool()))
    out = tmp_path / "subset.jsonl"
    result = CliRunner().invoke(app, ["select", str(data), "--method", method, "--budget", "4", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "left out 1 rows whose instag judgment failed" in result.output
    chosen = [json.loads(line)["instruction"] for line in out.read_text().splitlines()]
    assert "task 1" not in chosen


def test_report_says_how_many_rows_failures_kept_out(tmp_path: Path):
    from winnow.audit.report import write_report

    pool = [{"instruction": f"t{i}", "output": "o", "alpagasus_score": 5.0 if i else None,
             "alpagasus_status": "ok" if i else "judge_failed"} for i in range(4)]
    out = write_report(pool, pool[1:], judges=["alpagasus"], settings={}, output=tmp_path / "r.html")
    assert "Rows a failed judgment kept out of any selection: alpagasus 1." in out.read_text()
