"""`winnow select` / `winnow.select`: every option either acts or is refused, limits combine,
and errors name the CLI flags (issues found by exploratory testing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import winnow
from winnow.cli.app import app
from winnow.selection import select_rows
from winnow.selectors.tags import normalize_tags, parse_alpha, parse_min_support


def _rated(n: int = 50) -> list[dict]:
    """9 rows score 5.0, 7 score 4.5, the rest 3.0 (the tester's shape)."""
    rows = []
    for i in range(n):
        score = 5.0 if i < 9 else 4.5 if i < 16 else 3.0
        rows.append({"instruction": f"t{i}", "output": "o", "alpagasus_score": score, "alpagasus_status": "ok",
                     "deita_score": float(n - i), "instag_tags": [f"a{i % 7}", f"b{i % 5}"], "instag_status": "ok"})
    return rows


def _write(tmp_path: Path, rows: list[dict], name: str = "rated.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _cli(tmp_path: Path, rows: list[dict], *args: str) -> tuple[int, str, list[dict]]:
    """Run `winnow select` on ``rows``; the exit code, the summary and the rows written."""
    out = tmp_path / "subset.jsonl"
    out.unlink(missing_ok=True)
    result = CliRunner().invoke(app, ["select", str(_write(tmp_path, rows)), *args, "-o", str(out)])
    chosen = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return result.exit_code, result.output, chosen


# 1. --min-score and a count both apply: the floor first, then the count among rows that pass


def test_min_score_is_a_floor_under_top_k(tmp_path: Path) -> None:
    code, out, chosen = _cli(tmp_path, _rated(), "--min-score", "5.0", "--top-k", "20")
    assert code == 0, out
    assert len(chosen) == 9 and all(row["alpagasus_score"] == 5.0 for row in chosen)
    assert "min_score: 5.0" in out and "top_k: 20" in out  # the summary shows every limit


def test_min_score_and_budget_both_apply(tmp_path: Path) -> None:
    code, out, chosen = _cli(tmp_path, _rated(), "--min-score", "4.5", "--budget", "5")
    assert code == 0, out
    assert [row["instruction"] for row in chosen] == ["t0", "t1", "t2", "t3", "t4"]  # ties keep pool order
    assert [row["selection_rank"] for row in chosen] == [1, 2, 3, 4, 5]
    assert "min_score: 4.5" in out and "budget: 5" in out


def test_min_score_floor_under_top_frac_of_the_whole_file() -> None:
    result = select_rows(_rated(), "threshold", min_score=4.5, top_frac=0.5)  # 25 asked, 16 pass the floor
    assert len(result.rows) == 16 and result.details["top_frac"] == 0.5 and result.details["min_score"] == 4.5
    assert any("top-frac 0.5 (25 rows) not reachable" in note and "min-score 4.5" in note for note in result.notes)


def test_threshold_alone_is_still_alpagasus() -> None:
    result = select_rows(_rated(), "threshold")
    assert len(result.rows) == 16 and "selection_rank" not in result.rows[0]  # 4.5 inclusive, pool order
    assert result.details["min_score"] == 4.5


def test_deita_min_score_floor_drops_rows_before_selection() -> None:
    rows = _rated()
    for i, row in enumerate(rows):
        row["vec"] = [1.0, float(i)]  # all distinct directions, but close: threshold 1.0 keeps all
    result = select_rows(rows, "deita", min_score=41.0, embedding_column="vec", threshold=1.0)
    assert [row["deita_score"] for row in result.rows] == [50.0 - i for i in range(10)]
    assert result.details["min_score"] == 41.0 and result.details["below_min_score"] == 40


# 2. an option the method does not read is refused, naming it, the method and what it takes


@pytest.mark.parametrize(
    ("args", "wanted"),
    [
        (["--method", "deita", "--top-k", "5"], "--top-k does not apply to --method deita (give the number of rows "
                                                "with --budget)"),
        (["--method", "instag", "--budget", "5", "--min-score", "4.9"],
         "--min-score does not apply to --method instag"),
        (["--method", "threshold", "--threshold", "0.5", "--tags-column", "foo"],
         "--tags-column, --threshold do not apply to --method threshold"),
        (["--method", "instag", "--budget", "5", "--top-frac", "0.5"], "--top-frac does not apply to --method instag"),
    ],
)
def test_cli_refuses_options_the_method_does_not_read(tmp_path: Path, args: list[str], wanted: str) -> None:
    code, out, chosen = _cli(tmp_path, _rated(), *args)
    assert code == 2 and wanted in out and "it takes" in out, out
    assert chosen == []


def test_python_select_refuses_top_k_for_deita(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--top-k does not apply to --method deita.*--budget"):
        winnow.select(_write(tmp_path, _rated()), "deita", top_k=5)


def test_defaults_are_not_options_given() -> None:
    """A pipeline passes every option, defaults included: those must not count as given."""
    result = select_rows(_rated(), "threshold", min_score=5.0, tags_column="instag_tags", threshold=0.9)
    assert len(result.rows) == 9


def test_deita_takes_one_vector_source(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one of --embedding-column, --embed-model or --tags-column"):
        select_rows(_rated(), "deita", budget=3, embedding_column="vec", tags_column="my_tags")
    with pytest.raises(ValueError, match="--api-base is the base URL for --embed-model"):
        winnow.select(_write(tmp_path, _rated()), "deita", budget=3, api_base="http://127.0.0.1:1/v1")


# 3. errors name the CLI flags


def test_count_options_conflict_names_the_flags(tmp_path: Path) -> None:
    code, out, _ = _cli(tmp_path, _rated(), "--top-k", "3", "--top-frac", "0.5")
    assert code == 2 and "give at most one of --top-k, --top-frac and --budget" in out


def test_instag_without_budget_names_the_flag(tmp_path: Path) -> None:
    code, out, _ = _cli(tmp_path, _rated(), "--method", "instag")
    assert code == 2 and "--method instag needs --budget" in out


def test_python_values_are_checked_by_option_name() -> None:
    with pytest.raises(ValueError, match="--top-k must be a whole number >= 0"):
        select_rows(_rated(), "threshold", top_k=-1)
    with pytest.raises(ValueError, match="--top-frac must be a fraction"):
        select_rows(_rated(), "threshold", top_frac=1.5)
    with pytest.raises(ValueError, match="--min-score must be a number"):
        select_rows(_rated(), "threshold", min_score=float("nan"))


@pytest.mark.parametrize("value", ["foo", 0, "2.5"])
def test_alpha_errors_name_the_flag_and_off(value: object) -> None:
    with pytest.raises(ValueError, match=r"--alpha .*'auto' or 'off'") as info:
        normalize_tags([["a"]], alpha=value)  # type: ignore[arg-type]
    assert "invalid literal" not in str(info.value)


def test_min_support_errors_name_the_flag() -> None:
    with pytest.raises(ValueError, match=r"--min-support .*whole count.*got '0.5'"):
        normalize_tags([["a"]], min_support="0.5")  # type: ignore[arg-type]


def test_alpha_and_min_support_read_cli_strings() -> None:
    assert parse_alpha("off") is None and parse_alpha("auto") == "auto" and parse_alpha(" 12 ") == 12
    assert parse_min_support("3") == 3 and parse_min_support("auto") == "auto"
    kept = normalize_tags([["a"], ["a"], ["b"]], alpha="2", rule=False, association=False)  # type: ignore[arg-type]
    assert kept.alpha == 2 and kept.tag_lists == [["a"], ["a"], []]


# 4. a count the method cannot reach is reported for every count option


@pytest.mark.parametrize(("args", "note"), [(["--top-k", "500"], "top-k 500 not reachable: selected 50 of 50"),
                                            (["--budget", "100"], "budget 100 not reachable: selected 50 of 50")])
def test_unreachable_count_is_reported_alike(tmp_path: Path, args: list[str], note: str) -> None:
    code, out, chosen = _cli(tmp_path, _rated(), *args)
    assert code == 0 and len(chosen) == 50 and note in out, out


def test_reachable_count_has_no_note() -> None:
    assert not any("not reachable" in note for note in select_rows(_rated(), "threshold", top_k=50).notes)


# 5. a missing column's hint fits the option that named it


def test_missing_embedding_column_does_not_say_rate_first(tmp_path: Path) -> None:
    code, out, _ = _cli(tmp_path, _rated(), "--method", "deita", "--embedding-column", "vec")
    assert code == 2 and "no column 'vec'" in out and "precomputed vectors" in out
    assert "rate with the judge first" not in out


def test_prompts_only_file_points_to_the_complexity_score(tmp_path: Path) -> None:
    rows = [{"instruction": f"t{i}", "deita_complexity_score": float(i), "deita_complexity_status": "ok",
             "instag_tags": [f"x{i}"]} for i in range(5)]
    code, out, _ = _cli(tmp_path, rows, "--method", "deita", "--budget", "2")
    assert code == 2 and "no column 'deita_score'" in out
    assert "--score-column deita_complexity_score" in out and "rate with the judge first" not in out
    code, out, chosen = _cli(tmp_path, rows, "--method", "deita", "--budget", "2",
                             "--score-column", "deita_complexity_score")
    assert code == 0 and [row["instruction"] for row in chosen] == ["t4", "t3"], out
