"""AlpaGasus threshold (methods.md 1.4) and top-k ranking: hand-worked cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from winnow.selectors.threshold import threshold_select, top_k_select

# row:      0    1    2     3    4              5         6    7
SCORES = [4.5, 5.0, None, 4.0, 4.5, float("nan"), 3.0, 5.0]
STATUS = ["ok", "ok", "ok", "ok", "judge_failed", "ok", "ok", "ok"]


def test_threshold_inclusive_pool_order_and_failed_rows_skipped() -> None:
    # >= 4.5 (P-A3 inclusive): rows 0 (4.5), 1 (5.0), 7 (5.0). Row 4 is 4.5 but its judgment
    # failed; row 2 is None and row 5 NaN: never selected. Pool order kept (P-A5).
    assert threshold_select(SCORES, STATUS, 4.5) == [0, 1, 7]
    # Strict '>' would keep only the fives; make sure we are not doing that.
    assert threshold_select(SCORES, STATUS, 5.0) == [1, 7]
    # Without statuses, row 4 counts.
    assert threshold_select(SCORES, None, 4.5) == [0, 1, 4, 7]


def test_top_k_ties_by_index_and_frac() -> None:
    # usable: 0:4.5 1:5.0 3:4.0 6:3.0 7:5.0 -> ranked 1,7 (tie, index order), 0, 3, 6
    assert top_k_select(SCORES, STATUS, k=3) == [1, 7, 0]
    assert top_k_select(SCORES, STATUS) == [1, 7, 0, 3, 6]
    assert top_k_select(SCORES, STATUS, k=100) == [1, 7, 0, 3, 6]  # failed rows never pad
    assert top_k_select(SCORES, STATUS, frac=0.5) == [1, 7, 0, 3]  # floor(0.5 * 8) = 4
    assert len(top_k_select([1.0] * 100, None, frac=0.29)) == 29  # not 28 from 28.999999999999996
    assert top_k_select(SCORES, STATUS, k=0) == []


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="row 1: field 'score'"):
        threshold_select([1.0, "4"], None, 4.5)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="status"):
        threshold_select([1.0], ["ok", "ok"], 4.5)
    with pytest.raises(ValueError, match="at most one"):
        top_k_select([1.0], None, k=1, frac=0.5)


scores_st = st.lists(
    st.one_of(st.none(), st.just(float("nan")), st.sampled_from([3.0, 4.0, 4.5, 5.0]), st.floats(0, 5)), max_size=40
)


@given(scores_st, st.floats(0, 5))
def test_threshold_matches_definition(scores: list[float | None], tau: float) -> None:
    want = [i for i, s in enumerate(scores) if s is not None and not math.isnan(s) and s >= tau]
    assert threshold_select(scores, None, tau) == want


@given(scores_st, st.integers(0, 50))
def test_top_k_is_sorted_stable_prefix(scores: list[float | None], k: int) -> None:
    got = top_k_select(scores, None, k=k)
    valid = [i for i, s in enumerate(scores) if s is not None and not math.isnan(s)]
    assert got == sorted(valid, key=lambda i: (-scores[i], i))[:k]  # type: ignore[operator]
