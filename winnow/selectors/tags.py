"""InsTag tag normalisation: frequency, rule, semantic, association (methods.md 2.4, P-I3, P-I4).

The steps run in the paper's order and each can be switched off.  A *group* is a set of
original tags that now count as one tag; every step maps groups to coarser groups, so the
vocabulary can only shrink.  The canonical name of a group is its most frequent original
member (tie: shortest, then lexicographic) (2.4 [inferred]); frequency of an original tag is
the number of samples whose list contains it (a tag repeated inside one list counts once).

1. frequency: drop original tags seen in fewer than ``alpha`` samples.  ``alpha="auto"``
   scales the paper's 20 (for ~300K queries) to the pool:
   ``max(1, floor(20 * n / 300_000 + 0.5))`` with n the number of rows (P-I4).
2. rule: lowercase, every non-alphanumeric character (Unicode-aware; ``_`` included) -> space,
   split on whitespace, Porter-stem each word (NLTK); equal keys merge.  A tag with no
   alphanumeric character has an empty key and is dropped (P-I6: no canonical tag).
3. semantic (only when ``semantic_embed`` is given): embed each group's canonical name; DBSCAN
   with min_samples=1 and ``eps`` a cosine *distance* radius (P-I3), which is exactly the
   connected components of the graph "1 - cos <= eps".  A zero embedding is at distance 1
   from everything (sklearn's convention), so it stays alone for any sensible eps < 1.
4. association: over per-sample sets of groups, rules A -> B with absolute support
   ``count(A and B) >= min_support`` and confidence ``count(A and B) / count(A) >=
   min_confidence``; tags linked by a rule merge, transitively ("recursively").  Only
   single-item antecedent/consequent rules are mined: those are the rules that link two tags,
   so they are what drives a merge.  They equal FP-Growth's rules of that shape, since a pair
   rule needs a frequent pair.  ``min_support="auto"`` = ``max(2, floor(40 * n / 300_000 + 0.5))``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from winnow.selectors._tagsets import dedupe_segments, intern_tag_sets, offsets

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "TagNormalization", "auto_alpha", "auto_min_support", "normalize_tags", "parse_alpha", "parse_min_support",
    "rule_key",
]

_NON_ALNUM = re.compile(r"[\W_]+")
_COUNT = re.compile(r"\s*[0-9]+\s*")


@dataclass(frozen=True, slots=True)
class TagNormalization:
    """``tag_lists[i]``: sample i's canonical tags, deduplicated, first-occurrence order
    (``None`` stays ``None``: a failed tagging is not an empty one).  ``tag_map``: every
    original tag -> canonical tag, or ``None`` when a step dropped it.  ``vocab_sizes``:
    ``("raw", n)`` then ``(step, n)`` after each step that ran.  ``rules``: directed
    association rules found."""

    tag_lists: list[list[str] | None]
    tag_map: dict[str, str | None]
    vocab_sizes: list[tuple[str, int]]
    alpha: int | None
    min_support: int | None
    rules: int


def auto_alpha(n_rows: int) -> int:
    """The paper's alpha = 20 for ~300K queries, scaled linearly to ``n_rows`` (P-I4)."""
    return max(1, math.floor(20 * n_rows / 300_000 + 0.5))


def auto_min_support(n_rows: int) -> int:
    """The paper's FP-Growth support 40 for ~300K queries, scaled linearly (P-I4), and never
    below 2: a pair seen in one sample is no evidence, yet at support 1 every tag seen once has
    confidence 1/1 with each tag beside it and merges into it (a 30-row pool's 38 tags fell to 14,
    and InsTag's complexity, the count of a row's tags, with them)."""
    return max(2, math.floor(40 * n_rows / 300_000 + 0.5))


def parse_alpha(value: object) -> int | Literal["auto"] | None:
    """The frequency filter's ``alpha`` as the CLI (``--alpha``), a pipeline file or Python gives
    it: a whole count >= 1, ``"auto"``, or ``"off"``/``None`` for no filter.  One parser, so every
    route refuses a bad value with the same message, naming the flag, instead of ``int()``'s."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "none")):
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    count = _whole_count(value)
    if count is None or count < 1:
        raise ValueError(f"--alpha (alpha) must be a whole count >= 1, 'auto' or 'off' (None in Python), "
                         f"got {value!r}")
    return count


def parse_min_support(value: object) -> int | Literal["auto"]:
    """Association rules' absolute ``min_support`` (``--min-support``): a whole count >= 1 or
    ``"auto"``; the same message from the CLI, a pipeline file and Python."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    count = _whole_count(value)
    if count is None or count < 1:
        raise ValueError(f"--min-support (min_support) must be a whole count of samples >= 1 or 'auto', "
                         f"got {value!r}")
    return count


def _whole_count(value: object) -> int | None:
    """``value`` as a whole number, or None when it is not one (0.5 is not silently 0)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _COUNT.fullmatch(value):
        return int(value)
    return None


def rule_key(tag: str, stem: Callable[[str], str] | None = None) -> str:
    """Rule-aggregation key: lowercase, non-alphanumerics -> space, Porter-stem each word."""
    if stem is None:
        from nltk.stem import PorterStemmer

        stem = PorterStemmer().stem
    return " ".join(stem(w) for w in _NON_ALNUM.sub(" ", tag.lower()).split())


def _components(n: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Connected components of an undirected graph, vectorised union-find by hooking.

    Roots always point to a smaller id, so there are no cycles; each round hooks the larger
    root of every unresolved edge onto the smallest root it touches.  Returns each node's
    root (the smallest id in its component).
    """
    import numpy as np

    parent = np.arange(n, dtype=np.int64)
    u, v = u.astype(np.int64), v.astype(np.int64)
    while u.size:
        while True:  # full path compression
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
        ru, rv = parent[u], parent[v]
        open_ = ru != rv
        u, v, ru, rv = u[open_], v[open_], ru[open_], rv[open_]
        np.minimum.at(parent, np.maximum(ru, rv), np.minimum(ru, rv))
    return parent


def _relabel(group: np.ndarray, new_of_old: np.ndarray) -> tuple[np.ndarray, int]:
    """Compose ``group`` (original id -> group or -1) with a group -> coarser-key map, then
    renumber the keys densely.  Returns (new group array, number of groups)."""
    import numpy as np

    alive = group >= 0
    if not alive.any():
        return np.full(len(group), -1, dtype=np.int64), 0
    keys = np.where(alive, new_of_old[np.where(alive, group, 0)], -1)
    alive &= keys >= 0
    uniq, dense = np.unique(keys[alive], return_inverse=True)
    out = np.full(len(group), -1, dtype=np.int64)
    out[alive] = dense
    return out, len(uniq)


def _canonical(group: np.ndarray, n_groups: int, vocab: list[str], freq: np.ndarray) -> list[str]:
    """Most frequent original member of each group; tie -> shortest, then lexicographic."""
    best: list[tuple[int, int, str] | None] = [None] * n_groups
    for i in range(len(vocab)):
        g = int(group[i])
        if g < 0:
            continue
        cand = (-int(freq[i]), len(vocab[i]), vocab[i])
        cur = best[g]
        if cur is None or cand < cur:
            best[g] = cand
    return [b[2] for b in best if b is not None]


def _semantic(names: list[str], embed: Callable[[list[str]], np.ndarray], eps: float) -> np.ndarray:
    import numpy as np

    emb = np.asarray(embed(names), dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(names):
        raise ValueError(f"semantic_embed returned shape {emb.shape} for {len(names)} tags (want n x d)")
    if not np.isfinite(emb).all():
        raise ValueError("semantic_embed returned a NaN or infinite value")
    norm = np.linalg.norm(emb, axis=1)
    emb = emb / np.where(norm > 0, norm, 1.0)[:, None]  # a zero row has cos 0 (distance 1), as in sklearn
    us, vs = [], []
    for a in range(0, len(names), 1024):
        dist = 1.0 - emb[a : a + 1024] @ emb.T
        i, j = np.nonzero(dist <= eps)  # DBSCAN's eps-neighbourhood is inclusive
        keep = j > i + a
        us.append(i[keep] + a)
        vs.append(j[keep])
    if not us:
        return np.arange(len(names))
    return _components(len(names), np.concatenate(us), np.concatenate(vs))


def _association(
    gflat: np.ndarray, lengths: np.ndarray, n_groups: int, min_support: int, min_confidence: float
) -> tuple[np.ndarray, int]:
    """Single-item rules over per-sample group sets -> component root per group, #rules."""
    import numpy as np

    count = np.bincount(gflat, minlength=n_groups)
    frequent = count[gflat] >= min_support  # a pair's support never exceeds its items' support
    sample = np.repeat(np.arange(len(lengths)), lengths)[frequent]
    items = gflat[frequent].astype(np.int64)
    flen = np.bincount(sample, minlength=len(lengths))
    pos = np.arange(len(items)) - offsets(flen)[sample]
    codes = []
    for k in range(1, int(flen.max(initial=0))):
        p = np.flatnonzero(pos + k < flen[sample])
        a, b = items[p], items[p + k]
        codes.append(np.minimum(a, b) * n_groups + np.maximum(a, b))
    if not codes:
        return np.arange(n_groups), 0
    allc = np.sort(np.concatenate(codes))
    starts = np.flatnonzero(np.concatenate(([True], allc[1:] != allc[:-1])))
    pair_count = np.diff(np.append(starts, len(allc)))
    uniq = allc[starts]
    a, b = uniq // n_groups, uniq % n_groups
    sup = pair_count >= min_support
    a_to_b = sup & (pair_count / count[a] >= min_confidence)
    b_to_a = sup & (pair_count / count[b] >= min_confidence)
    linked = a_to_b | b_to_a
    n_rules = int(a_to_b.sum() + b_to_a.sum())
    return _components(n_groups, a[linked], b[linked]), n_rules


def normalize_tags(
    tag_lists: Sequence[Sequence[str] | None],
    *,
    alpha: int | Literal["auto"] | None = "auto",
    rule: bool = True,
    semantic_embed: Callable[[list[str]], np.ndarray] | None = None,
    eps: float = 0.05,
    association: bool = True,
    min_support: int | Literal["auto"] = "auto",
    min_confidence: float = 0.99,
) -> TagNormalization:
    """Normalise open-set InsTag tags (methods.md 2.4); see the module docstring for each step."""
    import numpy as np

    alpha, min_support = parse_alpha(alpha), parse_min_support(min_support)
    if not 0 < min_confidence <= 1:
        raise ValueError(f"--min-confidence (min_confidence) must be in (0, 1], got {min_confidence!r}")
    n = len(tag_lists)
    flat, lengths, vocab = intern_tag_sets(tag_lists)
    freq = np.bincount(flat, minlength=len(vocab))
    group = np.arange(len(vocab), dtype=np.int64)
    n_groups = len(vocab)
    sizes = [("raw", n_groups)]
    used_alpha = used_support = None
    if alpha is not None:
        used_alpha = auto_alpha(n) if alpha == "auto" else alpha
        group, n_groups = _relabel(group, np.where(freq >= used_alpha, np.arange(len(vocab)), -1))
        sizes.append(("frequency", n_groups))
    if rule:
        from nltk.stem import PorterStemmer

        stem_cache: dict[str, str] = {}
        stemmer = PorterStemmer()

        def stem(w: str) -> str:
            if w not in stem_cache:
                stem_cache[w] = stemmer.stem(w)
            return stem_cache[w]

        key_ids: dict[str, int] = {}
        new_of_old = np.full(len(vocab), -1, dtype=np.int64)  # groups are still single tags here
        for i in np.flatnonzero(group >= 0).tolist():
            key = rule_key(vocab[i], stem)
            if key:
                new_of_old[group[i]] = key_ids.setdefault(key, len(key_ids))
        group, n_groups = _relabel(group, new_of_old)
        sizes.append(("rule", n_groups))
    if semantic_embed is not None:
        if not 0 <= eps <= 2:
            raise ValueError(f"eps is a cosine distance radius in [0, 2], got {eps!r} (P-I3)")
        names = _canonical(group, n_groups, vocab, freq)
        group, n_groups = _relabel(group, _semantic(names, semantic_embed, eps))
        sizes.append(("semantic", n_groups))
    n_rules = 0
    if association:
        used_support = auto_min_support(n) if min_support == "auto" else min_support
        g = group[flat]
        keep = g >= 0
        ck = offsets(keep.astype(np.int64))[offsets(lengths)]
        gflat, glen = dedupe_segments(g[keep], np.diff(ck))
        roots, n_rules = _association(gflat, glen, n_groups, used_support, min_confidence)
        group, n_groups = _relabel(group, roots)
        sizes.append(("association", n_groups))
    names = _canonical(group, n_groups, vocab, freq)
    tag_map: dict[str, str | None] = {
        t: (names[g] if g >= 0 else None) for t, g in zip(vocab, group.tolist(), strict=True)
    }
    out: list[list[str] | None] = []
    canon_of = tag_map.__getitem__
    for tags in tag_lists:
        if tags is None:
            out.append(None)
            continue
        firsts = dict.fromkeys(map(canon_of, tags))  # dedupe, first-occurrence order
        firsts.pop(None, None)
        out.append(list(firsts))  # type: ignore[arg-type]
    return TagNormalization(out, tag_map, sizes, used_alpha, used_support, n_rules)
