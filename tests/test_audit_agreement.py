"""Agreement statistics against values worked out by hand (and scipy when it is installed)."""

from __future__ import annotations

import random

import pytest

from winnow.audit.agreement import (
    bin_scores,
    confusion_matrix,
    exact_agreement,
    jaccard,
    kendall_tau_b,
    quadratic_kappa,
    spearman,
)
from winnow.audit.compare import compare_rows, format_comparison


def test_spearman_and_kendall_without_ties():
    a, b = [1, 2, 3, 4, 5], [2, 1, 4, 3, 5]
    # sum d^2 = 4 -> rho = 1 - 6*4 / (5*24) = 0.8 ; 8 concordant, 2 discordant of 10 -> tau = 0.6
    assert spearman(a, b) == pytest.approx(0.8)
    assert kendall_tau_b(a, b) == pytest.approx(0.6)
    assert spearman(a, a) == pytest.approx(1.0)
    assert kendall_tau_b(a, list(reversed(a))) == pytest.approx(-1.0)


def test_spearman_and_kendall_with_ties():
    a, b = [1, 1, 2, 3], [1, 2, 2, 3]
    # ranks a (1.5,1.5,3,4), b (1,2.5,2.5,4): cov 3.75, var 4.5 each -> 0.8333
    assert spearman(a, b) == pytest.approx(3.75 / 4.5)
    # S = 4 of n0 = 6 pairs, one tied pair on each side -> 4 / sqrt(5 * 5)
    assert kendall_tau_b(a, b) == pytest.approx(0.8)


def test_constant_column_has_no_correlation():
    assert spearman([3, 3, 3], [1, 2, 3]) is None
    assert kendall_tau_b([3, 3, 3], [1, 2, 3]) is None
    assert spearman([1], [1]) is None


def test_quadratic_kappa_by_hand():
    a, b = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    assert confusion_matrix(a, b, 3) == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    # w = (i-j)^2/4; E = outer([2,2,2], [2,3,1]) / 6; sum w*O = 1.25, sum w*E = 1.75 -> 1 - 1.25/1.75 = 2/7
    assert quadratic_kappa(a, b, 3) == pytest.approx(2 / 7)
    assert quadratic_kappa(a, a, 3) == pytest.approx(1.0)
    assert exact_agreement(a, b) == pytest.approx(4 / 6)  # the diagonal 1 + 2 + 1
    assert quadratic_kappa([1, 1], [1, 1], 3) is None  # one shared bin: undefined, not 1 or 0


def test_binning_to_the_judge_scale():
    scale = (0.0, 5.0, 0.5)
    assert bin_scores([4.74, 4.75, 0.24, 0.25, -1, 7, 3.0], scale) == [9, 10, 0, 1, 0, 10, 6]
    assert bin_scores([1.4, 1.5, 6.2], (1.0, 6.0, 1.0)) == [0, 1, 5]


def test_jaccard():
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert jaccard(set(), set()) == 1.0


def test_matches_scipy_on_random_tied_scores():
    stats = pytest.importorskip("scipy.stats")
    rng = random.Random(7)
    a = [rng.choice([2.5, 3, 3.5, 4, 4.5, 5]) for _ in range(300)]
    b = [min(5.0, max(0.0, x + rng.choice([-1, -0.5, 0, 0, 0.5]))) for x in a]
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert kendall_tau_b(a, b) == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12)
    assert kendall_tau_b(a, b) == pytest.approx(_tau_b_by_pairs(a, b), abs=1e-12)  # an independent count


def _tau_b_by_pairs(a, b):
    """Kendall's tau-b by counting every pair: (C - D) / sqrt((n0 - n1)(n0 - n2))."""
    n = len(a)
    concordant = discordant = tied_a = tied_b = 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            tied_a += da == 0
            tied_b += db == 0
            if da * db > 0:
                concordant += 1
            elif da * db < 0:
                discordant += 1
    n0 = n * (n - 1) / 2
    return (concordant - discordant) / ((n0 - tied_a) * (n0 - tied_b)) ** 0.5


def _rows(scores, judge="alpagasus", status=None):
    rows = []
    for i, s in enumerate(scores):
        rows.append({
            "instruction": f"task {i}", f"{judge}_score": s, f"{judge}_explanation": f"why {s}",
            f"{judge}_status": (status or {}).get(i, "ok"),
        })
    return rows


def test_compare_rows_scores_threshold_and_disagreements():
    a = _rows([5.0, 4.5, 4.5, 3.0, 2.0, 1.0], status={5: "judge_failed"})
    b = _rows([5.0, 4.0, 5.0, 3.0, 4.5, 1.0])
    ids = [f"s{i}" for i in range(6)]
    rep = compare_rows(a, b, "alpagasus", names=("m1", "m2"), ids_a=ids, ids_b=ids,
                       threshold=4.5, top=2)
    assert rep["paired"] == 6 and rep["compared"] == 5 and rep["failed_a"] == 1
    assert rep["exact_agreement"] == pytest.approx(2 / 5)
    sel = rep["selection"]
    # kept A: s0 s1 s2 ; kept B: s0 s2 s4 -> both 2, Jaccard 2/4, overlap 2/3
    assert (sel["kept_a"], sel["kept_b"], sel["kept_both"]) == (3, 3, 2)
    assert sel["jaccard"] == pytest.approx(0.5) and sel["overlap"] == pytest.approx(2 / 3)
    assert [d["id"] for d in rep["disagreements"]] == ["s4", "s1"]  # gap 2.5 then 0.5
    assert rep["disagreements"][0]["explanation_b"] == "why 4.5"
    text = format_comparison(rep)
    assert "kappa" in text and "s4" in text and "why 4.5" in text


def test_compare_rows_aligns_by_id_not_position():
    a = _rows([1.0, 5.0])
    b = _rows([5.0, 1.0])
    rep = compare_rows(a, b, "alpagasus", ids_a=["x", "y"], ids_b=["y", "x"])
    assert rep["exact_agreement"] == 1.0 and rep["disagreements"] == []


def test_compare_tags():
    a = [{"instag_tags": ["a", "b"], "instag_status": "ok"}, {"instag_tags": ["x"], "instag_status": "ok"}]
    b = [{"instag_tags": ["b", "c"], "instag_status": "ok"}, {"instag_tags": ["x"], "instag_status": "ok"}]
    rep = compare_rows(a, b, "instag")
    assert rep["mean_jaccard"] == pytest.approx((1 / 3 + 1) / 2)
    assert (rep["vocab_a"], rep["vocab_b"], rep["vocab_both"]) == (3, 3, 2)
    assert rep["vocab_jaccard"] == pytest.approx(0.5)
    assert rep["disagreements"][0]["tags_b"] == ["b", "c"]
    assert "Jaccard" in format_comparison(rep)
