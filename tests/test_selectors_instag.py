"""InsTag complexity-first diverse sampling (methods.md 2.6, P-I1, P-I2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from winnow.selectors.instag import instag_select

# row: 0      1                2           3     4                5           6      7
POOL = [["a"], ["a", "b", "c"], ["b", "d"], None, ["c", "d", "e"], ["e", "e"], ["f"], []]
# Distinct counts: 1, 3, 2, 0, 3, 1 (the repeated "e" counts once, P-I2), 1, 0.
# Stable sort by count desc, empty sets left out: 1, 4, 2, 0, 5, 6.
# Pass 1 (seen = {}): 1 brings a,b,c -> take; 4 brings d,e -> take; 2 (b,d) nothing new;
#   0 (a) nothing; 5 (e) nothing; 6 brings f -> take.            pass 1 = [1, 4, 6]
# Pass 2 (seen RESET): remaining 2, 0, 5: each brings a tag new to this pass.
#                                                                 pass 2 = [2, 0, 5]
# Pass 3: only the empty rows 3 and 7 remain; they are never accepted -> stop, no padding.


def test_multi_pass_with_reset_and_empty_guard() -> None:
    r = instag_select(POOL, 100)
    assert r.indices == [1, 4, 6, 2, 0, 5]
    assert r.passes == 2 and r.pass_sizes == [3, 3]
    assert r.reached_budget is False
    assert r.empty_tag_samples == 2


@pytest.mark.parametrize(
    ("budget", "want", "passes"),
    [(0, [], 0), (1, [1], 1), (2, [1, 4], 1), (4, [1, 4, 6, 2], 2), (6, [1, 4, 6, 2, 0, 5], 2)],
)
def test_budget_stops_mid_pass(budget: int, want: list[int], passes: int) -> None:
    r = instag_select(POOL, budget)
    assert r.indices == want
    assert r.passes == passes
    assert r.reached_budget is True


def test_ties_keep_pool_order() -> None:
    # All counts equal: pass 1 takes 0 (x), 1 (y); 2 and 3 bring nothing new.
    # Pass 2 takes 2 (x), 3 (y).
    assert instag_select([["x"], ["y"], ["x"], ["y"]], 4).indices == [0, 1, 2, 3]
    assert instag_select([["x"], ["y"], ["x"], ["y"]], 3).indices == [0, 1, 2]
    # A global `seen` (P-I1) would stop after pass 1 with [0, 1].


def test_only_empty_samples() -> None:
    r = instag_select([None, [], None], 5)
    assert r.indices == [] and r.passes == 0 and r.empty_tag_samples == 3 and not r.reached_budget


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="row 1"):
        instag_select([["a"], "ab"], 2)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="row 1: field 'tags' holds a non-string"):
        instag_select([["a"], ["b", 3]], 2)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="budget"):
        instag_select([["a"]], -1)


def reference(tag_sets: list[list[str] | None], budget: int) -> tuple[list[int], int]:
    """Straight from the pseudocode in methods.md 2.6 (slow, obviously correct)."""
    sets = [set(t or ()) for t in tag_sets]
    pool = sorted(range(len(sets)), key=lambda i: -len(sets[i]))  # sorted() is stable
    out: list[int] = []
    passes = 0
    while len(out) < budget and pool:
        seen: set[str] = set()
        taken: list[int] = []
        for x in pool:
            if len(seen | sets[x]) > len(seen):
                out.append(x)
                taken.append(x)
                seen |= sets[x]
                if len(out) == budget:
                    break
        if not taken:
            break  # guard: the pass accepted nothing
        passes += 1
        done = set(taken)
        pool = [x for x in pool if x not in done]
    return out, passes


tag_sets_st = st.lists(
    st.one_of(st.none(), st.lists(st.sampled_from("abcdefghij"), max_size=6)), max_size=40
)


@settings(max_examples=150, deadline=None)
@given(tag_sets_st, st.integers(0, 50))
def test_matches_reference(tag_sets: list[list[str] | None], budget: int) -> None:
    r = instag_select(tag_sets, budget)
    want, passes = reference(tag_sets, budget)
    assert r.indices == want
    assert r.passes == passes
    assert len(r.indices) <= budget
    assert len(set(r.indices)) == len(r.indices)
    assert all(tag_sets[i] for i in r.indices)  # empty/None never accepted


@settings(max_examples=100, deadline=None)
@given(tag_sets_st)
def test_first_pass_covers_every_tag(tag_sets: list[list[str] | None]) -> None:
    union = set().union(*(t or () for t in tag_sets))
    r = instag_select(tag_sets, len(union))  # a pass takes at most one sample per tag
    first = r.indices[: r.pass_sizes[0]] if r.pass_sizes else []
    assert set().union(*(tag_sets[i] or () for i in first)) == union


def test_many_passes_exercise_chunks() -> None:
    # 800 samples over 5 tags, each sample one or two tags: hundreds of passes, chunk growth.
    import random

    rng = random.Random(7)
    pool: list[list[str] | None] = [
        [rng.choice("vwxyz") for _ in range(rng.randint(1, 2))] for _ in range(800)
    ]
    for budget in (1, 17, 799, 1000):
        assert instag_select(pool, budget).indices == reference(pool, budget)[0]
