"""InsTag complexity-first diverse sampling (methods.md 2.6, pitfalls P-I1, P-I2 in 2.8).

The algorithm, paraphrased from the paper's Alg. 1::

    sort D by |T_x| descending (stable: ties keep pool order)
    while |S| < N and D not empty:
        seen = {}                                  # reset at EVERY pass (P-I1)
        for x in D: if T_x adds a tag to seen: take x, seen |= T_x, remove x from D
        if the pass took nothing: stop             # guard; we never pad from the head

Exactness notes, all derived from the pseudocode and not heuristics:

* |T_x| counts distinct tags; ``None`` is the empty set (2.6, P-I2).  Empty samples can never
  be accepted, so they are dropped before the loop.  The only pass that could accept nothing
  is one over empty samples alone, so the guard reduces to "D has no non-empty sample left";
  ``passes`` therefore counts passes that accepted at least one sample.
* Inside a pass ``seen`` only grows, so a sample whose tags are all seen at some moment stays
  rejected for the rest of the pass.  That lets a numpy pre-filter over a chunk discard most
  samples at once; the survivors are then re-checked one by one in order (exact).
* A pass ends early once every tag still present in D is in ``seen``: no remaining sample can
  add a tag, so scanning further cannot accept anything.

Performance: 1M samples x 16 tags, budget 10K runs in a few seconds (bench/bench_selectors.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from winnow.selectors._tagsets import intern_tag_sets, offsets

if TYPE_CHECKING:
    import numpy as np

__all__ = ["InstagResult", "instag_select"]


@dataclass(frozen=True, slots=True)
class InstagResult:
    """Outcome of :func:`instag_select`.

    ``indices`` are pool indices in selection order; ``pass_sizes[p]`` is how many samples
    pass ``p`` accepted; ``reached_budget`` is False when the pool ran out of samples with
    tags first (the result is then short: no padding, P-I1).
    """

    indices: list[int]
    passes: int
    reached_budget: bool
    empty_tag_samples: int
    pass_sizes: list[int] = field(default_factory=list)


def instag_select(tag_sets: Sequence[Iterable[str] | None], budget: int) -> InstagResult:
    """Complexity-first diverse sampling of up to ``budget`` samples (methods.md 2.6)."""
    import numpy as np

    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"budget must be a non-negative integer, got {budget!r}")
    flat, lengths, vocab = intern_tag_sets(tag_sets)
    n_empty = int(np.count_nonzero(lengths == 0))
    order = np.argsort(-lengths, kind="stable")  # complexity-first; ties keep pool order
    order = order[lengths[order] > 0]  # empty tag sets are never accepted (2.6)
    m = len(order)
    # Re-lay the tag ids out in sorted order: sample c owns sflat[soff[c]:soff[c+1]].
    starts = offsets(lengths)[:-1][order]
    slen = lengths[order]
    soff = offsets(slen)
    sflat = flat[np.repeat(starts - soff[:-1], slen) + np.arange(soff[-1], dtype=np.int64)]
    del flat

    rem_count = np.bincount(sflat, minlength=len(vocab))  # how many remaining samples hold each tag
    remaining_vocab = int(np.count_nonzero(rem_count))
    alive = np.ones(m, dtype=bool)
    seen = np.zeros(len(vocab), dtype=bool)
    selected: list[int] = []
    pass_sizes: list[int] = []
    first_alive = 0
    while len(selected) < budget and first_alive < m:
        touched: list[np.ndarray] = []
        unseen_left = remaining_vocab  # tags of remaining samples not yet seen in this pass
        taken = 0
        pos, chunk = first_alive, 64
        while pos < m and unseen_left > 0 and len(selected) < budget:
            end = min(m, pos + chunk)
            base = soff[pos]
            has_new = np.logical_or.reduceat(~seen[sflat[base : soff[end]]], soff[pos:end] - base)
            for c in (np.flatnonzero(has_new & alive[pos:end]) + pos).tolist():
                tags = sflat[soff[c] : soff[c + 1]]
                new = tags[~seen[tags]]
                if new.size == 0:
                    continue  # its last new tag was taken earlier in this chunk
                seen[new] = True
                touched.append(new)
                unseen_left -= new.size
                alive[c] = False
                rem_count[tags] -= 1  # ids within one sample are distinct
                remaining_vocab -= int(np.count_nonzero(rem_count[tags] == 0))
                selected.append(int(order[c]))
                taken += 1
                if len(selected) >= budget or unseen_left == 0:
                    break
            pos = end
            chunk = min(chunk * 2, 1 << 16)
        for arr in touched:  # reset `seen` by clearing only what this pass touched
            seen[arr] = False
        if taken == 0:  # guard (2.6): cannot happen while a sample with tags remains
            break
        pass_sizes.append(taken)
        while first_alive < m and not alive[first_alive]:
            first_alive += 1
    return InstagResult(
        indices=selected,
        passes=len(pass_sizes),
        reached_budget=len(selected) == budget,
        empty_tag_samples=n_empty,
        pass_sizes=pass_sizes,
    )
