"""DEITA evol score and score-first diversity-aware selection (methods.md 3.5, 3.7, 3.10)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from winnow.selectors.deita import deita_score, deita_select, multi_hot


def test_evol_score_is_sum_of_products() -> None:
    # P-D3: 2*3 + 4*5 = 26, not (2+4)*(3+5) = 48 and not a mean.
    assert deita_score([2.0, 4.0], [3.0, 5.0]) == 26.0
    assert deita_score([1.5], [2.0]) == 3.0
    with pytest.raises(ValueError, match="one value per user turn"):
        deita_score([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="turn 1: field 'quality_scores'"):
        deita_score([1.0, 2.0], [1.0, None])  # type: ignore[list-item]


# row:    0       1       2       3       4            5
SCORES = [1.0, 3.0, 3.0, 2.0, None, 0.5]
VECS = np.array([[1, 0], [1, 0], [0, 1], [3, 4], [1, 0], [0, 0]], dtype=float)
# Order by score desc, ties by index (P-D6): 1, 2 (both 3.0), 3, 0, 5; row 4 has no score.
# 1: top sample, always taken.
# 2: cos((0,1), (1,0)) = 0                           <= 0.9 -> take
# 3: cos((3,4), (1,0)) = 0.6, cos((3,4), (0,1)) = 0.8 -> max 0.8 <= 0.9 -> take
# 0: cos((1,0), (1,0)) = 1 > 0.9                                        -> reject
# 5: zero vector: never rejected (P-D9)                                 -> take


def test_hand_worked_selection() -> None:
    r = deita_select(SCORES, VECS, None, 0.9)
    assert r.indices == [1, 2, 3, 5]
    assert (r.rejected, r.zero_vectors, r.failed, r.reached_budget) == (1, 1, 1, False)
    assert deita_select(SCORES, VECS, -1, 0.9).indices == [1, 2, 3, 5]
    r = deita_select(SCORES, VECS, 2, 0.9)
    assert r.indices == [1, 2] and r.reached_budget
    # Budget larger than what the pool can give: short result, no backfill.
    r = deita_select(SCORES, VECS, 10, 0.9)
    assert r.indices == [1, 2, 3, 5] and not r.reached_budget
    assert deita_select(SCORES, VECS, 0, 0.9).indices == []
    # At tau = 0.8 row 3 (max cos exactly 0.8) is still accepted: '<=' (P-D10).
    assert deita_select(SCORES, VECS, None, 0.8).indices == [1, 2, 3, 5]
    assert deita_select(SCORES, VECS, None, 0.79).indices == [1, 2, 5]


def test_exactly_at_threshold_dense_and_multi_hot() -> None:
    # Two samples with 10 tags each, 9 shared: cos = 9 / sqrt(10 * 10) = 0.9 exactly.
    a = [f"t{i}" for i in range(10)]
    b = [f"t{i}" for i in range(9)] + ["u"]
    mh = multi_hot([a, b])
    dense = mh.to_dense()
    for vecs in (mh, dense):
        assert deita_select([2.0, 1.0], vecs, None, 0.9).indices == [0, 1]  # 0.9 <= 0.9
        assert deita_select([2.0, 1.0], vecs, None, 0.89).indices == [0]
    # (3,4) vs (4,3): cos = 24/25 = 0.96.
    v = np.array([[3.0, 4.0], [4.0, 3.0]])
    assert deita_select([2.0, 1.0], v, None, 0.96).indices == [0, 1]
    assert deita_select([2.0, 1.0], v, None, 0.95).indices == [0]
    # P-D10: at tau = 0 two orthogonal vectors (similarity exactly 0) are both kept.
    assert deita_select([2.0, 1.0], np.eye(2), None, 0.0).indices == [0, 1]
    assert deita_select([2.0, 1.0], multi_hot([["x"], ["y"]]), None, 0.0).indices == [0, 1]
    # A duplicate has cos exactly 1: kept at tau = 1, rejected below.
    assert deita_select([2.0, 1.0], [[0.1, 0.7], [0.1, 0.7]], None, 1.0).indices == [0, 1]
    assert deita_select([2.0, 1.0], [[0.1, 0.7], [0.1, 0.7]], None, 0.999).indices == [0]


def test_zero_vectors_never_block_even_below_zero_threshold() -> None:
    # tau = -0.5: treating a zero vector's similarity as 0 would make it block row 1
    # (0 > -0.5); its similarity is undefined (NaN in the reference), so it blocks nothing.
    # Order 0 (zero, taken), 1 (nothing non-zero selected, taken), 2 (cos -1 <= -0.5, taken),
    # 3 (cos with row 1 is 1 > -0.5, rejected).
    v = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0], [1.0, 0.0]])
    r = deita_select([4.0, 3.0, 2.0, 1.0], v, None, -0.5)
    assert r.indices == [0, 1, 2] and r.zero_vectors == 1 and r.rejected == 1
    r = deita_select([4.0, 3.0, 2.0, 1.0], multi_hot([None, ["a"], [], ["a"]]), None, 0.5)
    assert r.indices == [0, 1, 2] and r.zero_vectors == 2


def test_empty_pool() -> None:
    r = deita_select([], [], None)
    assert (r.indices, r.rejected, r.zero_vectors, r.failed) == ([], 0, 0, 0)
    r = deita_select([None, None], np.ones((2, 3)), 5)  # every judgment failed
    assert r.indices == [] and r.failed == 2 and not r.reached_budget


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="2 rows for 3 scores"):
        deita_select([1.0, 2.0, 3.0], np.zeros((2, 4)), 1)
    with pytest.raises(ValueError, match="row 1: field 'vectors'"):
        deita_select([1.0, 2.0], np.array([[1.0, 0.0], [np.nan, 1.0]]), 1)
    with pytest.raises(ValueError, match="row 0: field 'score'"):
        deita_select(["x"], np.ones((1, 2)), 1)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="budget"):
        deita_select([1.0], np.ones((1, 2)), -2)


def cos(a: list[float], b: list[float]) -> float | None:
    na, nb = sum(x * x for x in a), sum(x * x for x in b)
    if na == 0 or nb == 0:
        return None  # no cosine (NaN in the reference): never rejects
    return min(1.0, sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(na * nb))


def reference(scores: list[float | None], vecs: list[list[float]], budget: int | None, tau: float) -> list[int]:
    """methods.md 3.7 with batch_size 1, stable tie-break (P-D6), '<=' (P-D10), P-D9."""
    order = sorted((i for i, s in enumerate(scores) if s is not None and not math.isnan(s)),
                   key=lambda i: (-scores[i], i))  # type: ignore[operator]
    out: list[int] = []
    for i in order:
        if budget is not None and len(out) >= budget:
            break
        sims = [cos(vecs[i], vecs[j]) for j in out]
        if all(s is None or s <= tau for s in sims):
            out.append(i)
    return out


@st.composite
def pools(draw: st.DrawFn) -> tuple[list[float | None], list[list[float]]]:
    n = draw(st.integers(0, 40))
    d = draw(st.integers(1, 4))
    scores = draw(st.lists(st.one_of(st.none(), st.sampled_from([0.0, 1.0, 2.0, 2.5, 7.0])), min_size=n, max_size=n))
    vecs = draw(st.lists(st.lists(st.integers(-2, 2).map(float), min_size=d, max_size=d), min_size=n, max_size=n))
    return scores, vecs


taus = st.sampled_from([-0.5, 0.0, 0.5, 0.6, 0.8, 0.9, 1.0, 2**-0.5])
budgets = st.one_of(st.none(), st.integers(0, 45))


@settings(max_examples=120, deadline=None)
@given(pools(), budgets, taus)
def test_dense_matches_reference(pool: tuple[list[float | None], list[list[float]]], budget: int | None,
                                 tau: float) -> None:
    scores, vecs = pool
    r = deita_select(scores, np.array(vecs).reshape(len(vecs), -1) if vecs else np.zeros((0, 1)), budget, tau)
    assert r.indices == reference(scores, vecs, budget, tau)
    for x in range(len(r.indices)):  # no selected pair above the threshold
        for y in range(x):
            c = cos(vecs[r.indices[x]], vecs[r.indices[y]])
            assert c is None or c <= tau


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(st.sampled_from("abcdef"), max_size=5)), max_size=40),
       st.data(), budgets, taus)
def test_multi_hot_matches_reference(tag_sets: list[list[str] | None], data: st.DataObject,
                                     budget: int | None, tau: float) -> None:
    scores = data.draw(st.lists(st.one_of(st.none(), st.sampled_from([1.0, 2.0, 3.0])),
                                min_size=len(tag_sets), max_size=len(tag_sets)))
    mh = multi_hot(tag_sets)
    got = deita_select(scores, mh, budget, tau).indices
    assert got == reference(scores, mh.to_dense().tolist(), budget, tau)


@pytest.mark.parametrize("chunk", [1024, 7])
def test_many_batches_clustered_float_vectors(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # 1,500 noisy copies of 30 centres: crosses many 256-candidate batches, with rejections
    # both against earlier batches and inside a batch; float32 screen vs float64 reference.
    # chunk = 7 makes the selected set span many chunks, so certain-witness skipping is used.
    import winnow.selectors._deita_dense as dense

    monkeypatch.setattr(dense, "_CHUNK", chunk)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 16))[rng.integers(0, 30, 1500)] + 0.4 * rng.normal(size=(1500, 16))
    x[rng.random(1500) < 0.02] = 0.0
    scores = rng.integers(0, 50, 1500).astype(float).tolist()
    n2 = (x * x).sum(axis=1)
    for tau in (0.9, 0.97):
        want: list[int] = []
        for i in sorted(range(1500), key=lambda i: (-scores[i], i)):
            live = [j for j in want if n2[j] > 0]
            if n2[i] == 0 or not live or (np.minimum(x[live] @ x[i] / np.sqrt(n2[i] * n2[live]), 1) <= tau).all():
                want.append(i)
        r = deita_select(scores, x, None, tau)
        assert r.indices == want
        assert r.rejected == 1500 - len(want)
