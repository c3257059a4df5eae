"""``winnow agree`` (issue 19 items 1 and 5): a judge against labels, on real published ratings.

tests/data/ratings/mt_bench_two_judges.jsonl: two real judges' published MT-Bench single-answer
grades of the same answers (sources in its README).  Every figure is checked against an
independent computation: scipy.stats for the rank correlations, a direct double sum for kappa,
counting for the selection figures.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from winnow.audit.agree import agree_rows
from winnow.cli.app import app

RATINGS = Path(__file__).parent / "data" / "ratings" / "mt_bench_two_judges.jsonl"


def _rows() -> list[dict]:
    return [json.loads(line) for line in RATINGS.read_text().splitlines() if line.strip()]


def _kappa_direct(a: list[int], b: list[int], k: int) -> float:
    n = len(a)
    observed = np.zeros((k, k))
    for i, j in zip(a, b, strict=True):
        observed[i, j] += 1
    row, col = observed.sum(axis=1), observed.sum(axis=0)
    num = den = 0.0
    for i in range(k):
        for j in range(k):
            w = (i - j) ** 2 / (k - 1) ** 2
            num += w * observed[i, j]
            den += w * row[i] * col[j] / n
    return 1 - num / den


def test_agreement_of_two_real_judges_equals_an_independent_computation():
    rows = _rows()
    assert len(rows) >= 150
    result = agree_rows(rows, "score_a", "score_b", judge_scale=(1, 10, 1), label_scale=(1, 10), threshold=8,
                        resamples=500)
    a = np.array([r["score_a"] for r in rows], dtype=float)
    b = np.array([r["score_b"] for r in rows], dtype=float)
    assert result.n == len(rows)
    assert result.figures["spearman"] == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-9)
    assert result.figures["kendall_tau_b"] == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-9)
    bins_a = [round(v) - 1 for v in a]
    bins_b = [round(v) - 1 for v in b]
    assert result.figures["quadratic_kappa"] == pytest.approx(_kappa_direct(bins_a, bins_b, 10), abs=1e-9)
    assert result.figures["mae"] == pytest.approx(float(np.mean(np.abs(a - b))), abs=1e-9)
    judge_keep, label_keep = a >= 8, b >= 8
    both = np.sum(judge_keep & label_keep)
    assert result.figures["selection_precision"] == pytest.approx(both / np.sum(judge_keep), abs=1e-9)
    assert result.figures["selection_recall"] == pytest.approx(both / np.sum(label_keep), abs=1e-9)
    for name, value in result.figures.items():
        low, high = result.intervals[name]
        assert low <= value <= high, name  # every figure with its 95% interval
    assert sum(map(sum, result.confusion)) == len(rows)
    print("\n" + "\n".join(result.lines()[:8]))


def test_cli_on_the_real_ratings_and_a_budget():
    result = CliRunner().invoke(app, ["agree", str(RATINGS), "--score-column", "score_a", "--labels", "score_b",
                                      "--label-scale", "1,10", "--budget", "50", "--resamples", "200", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["n"] == len(_rows()) and report["selection"]["judge_kept"] == 50
    assert report["selection"]["labels_kept"] == 50 and report["intervals"]["spearman"] is not None


def test_labels_from_a_second_file_failed_rows_left_out_and_pass_fail(write_jsonl, tmp_path):
    judged = [{"instruction": f"q{i}", "output": "a", "alpagasus_score": s, "alpagasus_status": st}
              for i, (s, st) in enumerate([(5.0, "ok"), (4.5, "ok"), (1.0, "ok"), (None, "judge_failed"),
                                           (2.0, "ok"), (4.0, "ok")])]
    labels = [{"instruction": f"q{i}", "output": "a", "human": v}
              for i, v in enumerate(["pass", "pass", "fail", "pass", "fail", "pass"])]
    judged_path = write_jsonl(judged, "judged.jsonl")
    labels_path = write_jsonl(labels, "labels.jsonl")
    result = CliRunner().invoke(app, ["agree", str(judged_path), "--judge", "alpagasus", "--labels", "human",
                                      "--labels-file", str(labels_path), "--threshold", "4.5", "--resamples", "100"])
    assert result.exit_code == 0, result.output
    assert "5 rows (left out: failed judgment 1)" in result.output
    rows = [dict(r, human=lab["human"]) for r, lab in zip(judged, labels, strict=True)]
    direct = agree_rows(rows, "alpagasus_score", "human", threshold=4.5, resamples=0)
    assert direct.n == 5 and direct.selection["labels_kept"] == 3 and direct.selection["judge_kept"] == 2
    assert direct.figures["selection_precision"] == 1.0 and direct.figures["selection_recall"] == pytest.approx(2 / 3)
