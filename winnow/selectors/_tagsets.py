"""Shared helper: per-sample tag lists -> a flat int32 array of tag ids (ragged layout).

Every tag-based selector (InsTag sampling, DEITA's multi-hot vectors, tag normalisation)
needs the same thing: distinct tags per sample, interned to dense ints so that the heavy
loops run on numpy arrays instead of Python sets.  Interning 16M strings costs a few
seconds of pure Python; everything after that is vectorised.  Per-sample deduplication
sorts the rows of each same-length group (a (rows x L) matrix, fast) instead of one
global 16M-element sort.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["dedupe_segments", "intern_tag_sets", "offsets"]


def offsets(lengths: np.ndarray) -> np.ndarray:
    """``[0, l0, l0+l1, ...]`` as int64: sample ``i`` owns ``flat[off[i]:off[i+1]]``."""
    import numpy as np

    off = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=off[1:])
    return off


def dedupe_segments(flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop repeated ids inside each segment, keeping first occurrences in their order."""
    import numpy as np

    off = offsets(lengths)
    keep = np.ones(len(flat), dtype=bool)
    for length in np.unique(lengths).tolist():
        if length < 2:
            continue
        rows = np.flatnonzero(lengths == length)
        idx = off[rows][:, None] + np.arange(length, dtype=np.int64)
        vals = flat[idx]
        sv = np.sort(vals, axis=1)  # cheap screen: most rows hold no repeated tag
        has_dup = (sv[:, 1:] == sv[:, :-1]).any(axis=1)
        if not has_dup.any():
            continue
        idx, vals = idx[has_dup], vals[has_dup]
        o = np.argsort(vals, axis=1, kind="stable")  # stable: the first occurrence sorts first
        sv = np.take_along_axis(vals, o, axis=1)
        dup = np.zeros(sv.shape, dtype=bool)
        dup[:, 1:] = sv[:, 1:] == sv[:, :-1]
        keep[np.take_along_axis(idx, o, axis=1)[dup]] = False
    if keep.all():
        return flat, lengths
    ck = np.zeros(len(flat) + 1, dtype=np.int64)
    np.cumsum(keep, out=ck[1:])
    return flat[keep], ck[off[1:]] - ck[off[:-1]]


def _bad_row(tag_sets: Sequence[Any]) -> str:
    """Locate the first row holding a non-string tag, for an error message that names it."""
    for i, tags in enumerate(tag_sets):
        for t in tags or ():
            if not isinstance(t, str):
                return f"row {i}: field 'tags' holds a non-string tag {t!r}"
    return "field 'tags' holds a non-string tag"


def intern_tag_sets(
    tag_sets: Sequence[Iterable[str] | None], *, dedupe: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Map tags to dense int ids (first-seen order) and, by default, dedupe each sample.

    Returns ``(flat_ids int32, lengths int64, vocab)`` with ``vocab[id]`` the tag string.
    ``None`` is an empty tag set.  A bare string is rejected: iterating it would silently
    turn one tag into letters.
    """
    import numpy as np

    lists: list[Sequence[str]] = []
    for i, tags in enumerate(tag_sets):
        if tags is None:
            lists.append(())
        elif isinstance(tags, str | bytes):
            raise ValueError(f"row {i}: field 'tags' must be a list of strings, got a bare string {tags!r}")
        elif isinstance(tags, list | tuple):
            lists.append(tags)
        else:
            try:
                lists.append(list(tags))
            except TypeError:
                raise ValueError(f"row {i}: field 'tags' must be a list of strings, got {tags!r}") from None
    flat = list(chain.from_iterable(lists))
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    del lists
    try:
        first_seen = dict.fromkeys(flat)
    except TypeError:
        raise ValueError(_bad_row(tag_sets)) from None
    if not all(isinstance(t, str) for t in first_seen):
        raise ValueError(_bad_row(tag_sets))
    vocab_ids = {t: j for j, t in enumerate(first_seen)}
    del first_seen
    ids = np.fromiter(map(vocab_ids.__getitem__, flat), dtype=np.int32, count=len(flat))
    del flat
    if dedupe:
        ids, lengths = dedupe_segments(ids, lengths)
    return ids, lengths, list(vocab_ids)
