"""InsTag tag normalisation (methods.md 2.4, P-I3, P-I4, P-I6)."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from winnow.selectors.tags import auto_alpha, auto_min_support, normalize_tags, rule_key


def test_rule_key_examples() -> None:
    assert rule_key("Code-Generation") == rule_key("code generation") == "code gener"
    assert rule_key("data_analysis!!") == rule_key("Data Analysis") == "data analysi"
    assert rule_key("  Writing   essays ") == rule_key("writing essay")
    assert rule_key("!!!") == ""


def test_rule_aggregation_and_canonical_choice() -> None:
    tl = [["Code-Generation", "math"], ["code generation", "Math"], ["code generation"], None, ["!!!"]]
    r = normalize_tags(tl, alpha=None, association=False)
    # "code generation" is in 2 samples, "Code-Generation" in 1 -> most frequent wins.
    # "math"/"Math" both in 1 sample, same length -> lexicographic: "Math" < "math".
    # "!!!" has no alphanumeric character: no canonical tag, dropped (P-I6).
    assert r.tag_map == {
        "Code-Generation": "code generation",
        "code generation": "code generation",
        "math": "Math",
        "Math": "Math",
        "!!!": None,
    }
    assert r.tag_lists == [["code generation", "Math"], ["code generation", "Math"], ["code generation"], None, []]
    assert r.vocab_sizes == [("raw", 5), ("rule", 2)]
    # Tie on frequency and length: lexicographic ("C" sorts before "c").
    r = normalize_tags([["Code-Generation"], ["code generation"]], alpha=None, association=False)
    assert r.tag_lists == [["Code-Generation"], ["Code-Generation"]]


def test_frequency_filter_absolute_and_auto() -> None:
    tl = [["a", "b"], ["a", "a"], ["a", "c"], ["b"]]
    # Document frequency (a repeated tag counts once per sample): a 3, b 2, c 1.
    r = normalize_tags(tl, alpha=2, rule=False, association=False)
    assert r.tag_map == {"a": "a", "b": "b", "c": None}
    assert r.tag_lists == [["a", "b"], ["a"], ["a"], ["b"]]
    r = normalize_tags(tl, alpha=3, rule=False, association=False)
    assert r.tag_lists == [["a"], ["a"], ["a"], []]
    assert r.vocab_sizes == [("raw", 3), ("frequency", 1)]
    # P-I4: alpha 20 / support 40 at ~300K rows, scaled down (never below 1) for small pools.
    assert (auto_alpha(300_000), auto_min_support(300_000)) == (20, 40)
    assert (auto_alpha(15_000), auto_min_support(15_000)) == (1, 2)
    assert (auto_alpha(100), auto_min_support(100)) == (1, 2)  # support 1 merges every tag seen once
    assert normalize_tags(tl).alpha == 1


def test_semantic_aggregation_is_connected_components_of_distance_radius() -> None:
    # a~b (cos 0.96, distance 0.04 <= 0.05), b~c (0.96), a vs c: cos 0.84 -> still one
    # cluster via b (DBSCAN, min_samples 1). d is orthogonal to everything.
    vec = {"a": [4.0, 3.0, 0.0], "b": [3.5, 3.5, 0.0], "c": [3.0, 4.0, 0.0], "d": [0.0, 0.0, 1.0]}
    vec["b"] = list(np.array(vec["a"]) / 5 + np.array(vec["c"]) / 5)  # halfway: cos 0.98995 to both
    tl = [["a", "b"], ["a", "d"], ["c"], ["b"], ["a"]]

    def embed(names: list[str]) -> np.ndarray:
        return np.array([vec[s] for s in names])

    r = normalize_tags(tl, alpha=None, rule=False, association=False, semantic_embed=embed, eps=0.05)
    assert set(r.tag_map.values()) == {"a", "d"}  # a is the most frequent member (3 samples)
    assert r.vocab_sizes == [("raw", 4), ("semantic", 2)]
    # eps = 0.01: a-b distance 0.01005 > 0.01 -> nothing merges.
    r = normalize_tags(tl, alpha=None, rule=False, association=False, semantic_embed=embed, eps=0.01)
    assert r.vocab_sizes[-1] == ("semantic", 4)
    with pytest.raises(ValueError, match="shape"):
        normalize_tags(tl, alpha=None, semantic_embed=lambda names: np.zeros((1, 2)))


def test_association_merges_linked_tags() -> None:
    tl = [["code", "math"], ["code", "math", "python"], ["python", "snake"], ["code"], ["snake", "python"]]
    # counts: code 3, math 2, python 3, snake 2. Pairs: code&math 2 (math->code conf 1),
    # code&python 1, math&python 1, python&snake 2 (snake->python conf 1, python->snake 2/3).
    r = normalize_tags(tl, alpha=None, rule=False, min_support=2)
    assert r.rules == 2
    assert r.tag_map == {"code": "code", "math": "code", "python": "python", "snake": "python"}
    assert r.tag_lists[1] == ["code", "python"]
    # min_support 3: no pair is that frequent -> nothing merges.
    assert normalize_tags(tl, alpha=None, rule=False, min_support=3).rules == 0


def reference_association(sets: list[set[str]], min_support: int, min_conf: float) -> dict[str, str]:
    count = Counter(t for s in sets for t in s)
    pair = Counter(p for s in sets for p in combinations(sorted(s), 2))
    parent = {t: t for t in count}

    def find(t: str) -> str:
        while parent[t] != t:
            t = parent[t]
        return t

    for (a, b), c in pair.items():
        if c >= min_support and (c / count[a] >= min_conf or c / count[b] >= min_conf):
            parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for t in count:
        groups.setdefault(find(t), []).append(t)
    canon = {}
    for members in groups.values():
        best = min(members, key=lambda t: (-count[t], len(t), t))
        canon.update({t: best for t in members})
    return canon


tag_lists_st = st.lists(st.one_of(st.none(), st.lists(st.sampled_from(
    ["a", "A", "b", "b!", "c", "cs", "d", "e-f", "E F", "g", "??"]), max_size=5)), max_size=40)


@settings(max_examples=100, deadline=None)
@given(tag_lists_st, st.integers(1, 4), st.integers(1, 4), st.sampled_from([0.5, 0.99, 1.0]))
def test_properties(tl: list[list[str] | None], alpha: int, support: int, conf: float) -> None:
    r = normalize_tags(tl, alpha=alpha, min_support=support, min_confidence=conf)
    sizes = [n for _, n in r.vocab_sizes]
    assert sizes == sorted(sizes, reverse=True)  # the vocabulary only shrinks
    assert [name for name, _ in r.vocab_sizes] == ["raw", "frequency", "rule", "association"]
    canon = {c for c in r.tag_map.values() if c is not None}
    assert sizes[-1] == len(canon)
    for c in canon:
        assert r.tag_map[c] == c  # a canonical tag is an original member of its own group
    for orig, out in zip(tl, r.tag_lists, strict=True):
        if orig is None:
            assert out is None
            continue
        want = list(dict.fromkeys(r.tag_map[t] for t in orig if r.tag_map[t] is not None))
        assert out == want


@settings(max_examples=100, deadline=None)
@given(tag_lists_st, st.integers(1, 4), st.sampled_from([0.5, 0.99, 1.0]))
def test_association_matches_reference(tl: list[list[str] | None], support: int, conf: float) -> None:
    r = normalize_tags(tl, alpha=None, rule=False, min_support=support, min_confidence=conf)
    assert r.tag_map == reference_association([set(t or ()) for t in tl], support, conf)
