"""``select``: read a judged file, pick the subset, write it in the input's own format.

The algorithms live in ``winnow.selectors`` (table in, indices out); this module only
reads columns, reports what happened and writes rows.  Rows whose judge failed are never
selected, and a count the method cannot reach is reported, never padded.  An option the
chosen method does not read is an error, never silently ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "METHODS", "METHOD_OPTIONS", "SelectResult", "check_options", "column_values", "failed_rows", "flag",
    "judges_of_column", "select", "select_rows",
]

METHODS = ("threshold", "instag", "deita")
DEFAULT_TAGS_COLUMN = "instag_tags"
DEFAULT_THRESHOLD = 0.9  # methods.md 3.7: accept iff cosine similarity <= 0.9
ALPAGASUS_MIN_SCORE = 4.5  # methods.md 1.4: tau = 4.5, inclusive

# The options each method reads (every method also honours keep_order).  Setting any other is
# an error, never silently ignored: a user who asks for 5 rows must not get 43.
METHOD_OPTIONS: dict[str, tuple[str, ...]] = {
    "threshold": ("score_column", "min_score", "top_k", "top_frac", "budget"),
    "instag": ("budget", "tags_column"),
    "deita": ("budget", "score_column", "min_score", "threshold", "tags_column", "embedding_column", "embed_model"),
}
_COUNT_OPTIONS = ("top_k", "top_frac", "budget")
_DEFAULTS: dict[str, Any] = {"tags_column": DEFAULT_TAGS_COLUMN, "threshold": DEFAULT_THRESHOLD}
_CHECKED = frozenset(name for options in METHOD_OPTIONS.values() for name in options)


@dataclass
class SelectResult:
    rows: list[dict[str, Any]]
    indices: list[int]
    pool_size: int
    method: str
    output: Path | None = None
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


def _decode(value: Any) -> Any:
    """CSV stores list columns as JSON text; decode them back."""
    if isinstance(value, str) and value[:1] in "[{":
        import orjson

        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def column_values(
    rows: list[dict[str, Any]], column: str, path: str, hint: str = "rate with the judge first"
) -> list[Any]:
    """A column's values; a column absent from every row is an error naming it, the columns
    the file has, and ``hint`` (what to do about it: the fix depends on which option named it)."""
    if rows and not any(column in row for row in rows):
        present = sorted({k for row in rows[:50] for k in row})
        raise ValueError(f"{path}: no column '{column}' (columns: {', '.join(present)}); {hint}")
    return [_decode(row.get(column)) for row in rows]


def _number(value: Any, path: str, index: int, column: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{path}: row {index + 1}, field '{column}': expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: row {index + 1}, field '{column}': expected a number, got {value!r}") from None
    return None if math.isnan(number) else number


def _statuses(rows: list[dict[str, Any]], score_column: str) -> list[str | None] | None:
    """The status column that belongs to a score column (``alpagasus_score`` -> ``alpagasus_status``)."""
    judge = score_column.rsplit("_", 1)[0]
    column = f"{judge}_status"
    if rows and any(column in row for row in rows):
        return [row.get(column) for row in rows]
    return None


def _scores(rows: list[dict[str, Any]], column: str, path: str) -> list[float | None]:
    values = column_values(rows, column, path, _score_hint(rows, column))
    return [_number(v, path, i, column) for i, v in enumerate(values)]


def _score_hint(rows: list[dict[str, Any]], column: str) -> str:
    """What to do about a missing score column.  "Rate with the judge first" misleads when the
    file holds other scores: a prompts-only file rated for DEITA complexity has no
    ``deita_score`` (that needs the quality judge too), but can be ranked by complexity."""
    present = sorted({k for row in rows[:50] for k in row if k.endswith("_score")})
    deita = [c for c in present if c.startswith("deita_")]
    if column == "deita_score" and deita:
        return (f"deita_score needs both DEITA judges (deita-complexity and deita-quality); rank by the score "
                f"this file has with --score-column {deita[0]}")
    if present:
        return f"name the score to use with --score-column (this file has {', '.join(present)})"
    return "rate with a judge first, or name the score column with --score-column"


def _tags_hint(method: str) -> str:
    """What to do about a missing tag column; DEITA only reads tags for its default vectors."""
    if method == "deita":
        return ("deita's default vectors are the InsTag tags: tag with `winnow rate --judge instag`, name the tag "
                "column with --tags-column, or take vectors from --embedding-column or --embed-model")
    return "tag with `winnow rate --judge instag` first, or name the tag column with --tags-column"


def flag(option: str) -> str:
    """The CLI flag of a ``select_rows`` keyword.  Errors name options this way so a CLI user
    can act on them as printed; a Python user reads ``--top-k`` as ``top_k`` just as easily."""
    return "--" + option.replace("_", "-")


def _flags(options: Iterable[str]) -> str:
    return ", ".join(flag(option) for option in options)


def _given(options: dict[str, Any]) -> list[str]:
    """The options a caller set: not None and not their default.  A default cannot change what
    a method does, and a pipeline passes every option, defaults included."""
    return [name for name, value in options.items() if value is not None and value != _DEFAULTS.get(name)]


def check_options(method: str, options: dict[str, Any]) -> None:
    """Refuse an option ``method`` does not read, and combinations where one would be dropped.

    ``options`` maps ``select_rows`` keywords to values.  Silently ignoring one is never right:
    ``--method deita --top-k 5`` must not hand back 43 rows.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}': use one of {', '.join(METHODS)}")
    takes = METHOD_OPTIONS[method]
    given = _given(options)
    stray = [name for name in given if name not in takes]
    if stray:
        instead = " (give the number of rows with --budget)" if {"top_k", "top_frac"} & set(stray) else ""
        raise ValueError(f"{_flags(stray)} {'does' if len(stray) == 1 else 'do'} not apply to --method {method}"
                         f"{instead}; it takes {_flags(takes)} and --keep-order")
    counts = [name for name in _COUNT_OPTIONS if name in given]
    if len(counts) > 1:
        raise ValueError(f"give at most one of --top-k, --top-frac and --budget (got {_flags(counts)})")
    if method == "instag" and "budget" not in given:
        raise ValueError("--method instag needs --budget, the number of rows to select")
    sources = [name for name in ("embedding_column", "embed_model", "tags_column") if name in given]
    if len(sources) > 1:
        raise ValueError(f"--method deita reads its vectors from one of --embedding-column, --embed-model or "
                         f"--tags-column (default: tags from {DEFAULT_TAGS_COLUMN}); got {_flags(sources)}")
    _check_values(options)


def _check_values(options: dict[str, Any]) -> None:
    """Type and range checks that name the option (the selectors' own messages say k, frac)."""
    for name in ("budget", "top_k"):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{flag(name)} must be a whole number >= 0, got {value!r}")
    frac = options.get("top_frac")
    if frac is not None and (isinstance(frac, bool) or not isinstance(frac, int | float) or not 0 <= frac <= 1):
        raise ValueError(f"--top-frac must be a fraction between 0 and 1, got {frac!r}")
    for name in ("min_score", "threshold"):
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value)):
            raise ValueError(f"{flag(name)} must be a number, got {value!r}")


def select(
    data: str | Path,
    method: str = "threshold",
    *,
    output: str | Path | None = None,
    layout: str | None = None,
    column_map: dict[str, str] | None = None,
    **options: Any,
) -> SelectResult:
    """Select rows of a judged file with ``method`` (threshold, instag or deita).

    ``options`` are those of ``select_rows``; they are checked before the file is read, so a
    wrong option fails fast on a large file.  The subset is written in the input's format.
    """
    from winnow.data import load, save

    check_options(method, {k: v for k, v in options.items() if k in _CHECKED})
    if output is not None:
        from winnow.data.writers import check_output_suffix

        check_output_suffix(Path(output))  # before the work: a typo in -o costs nothing
    if options.get("api_base") and not options.get("embed_model"):
        raise ValueError("--api-base is the base URL for --embed-model; give --embed-model or drop --api-base")
    dataset = load(data, layout=layout, column_map=column_map)
    result = select_rows([s.row for s in dataset.samples], method, samples=dataset.samples, path=str(data), **options)
    if output is not None:
        result.output = save(result.rows, Path(output), like=dataset)
    return result


def select_rows(
    rows: list[dict[str, Any]],
    method: str = "threshold",
    *,
    samples: list[Any] | None = None,
    path: str = "rows",
    budget: int | None = None,
    score_column: str | None = None,
    min_score: float | None = None,
    top_k: int | None = None,
    top_frac: float | None = None,
    tags_column: str = DEFAULT_TAGS_COLUMN,
    embedding_column: str | None = None,
    embed_model: str | None = None,
    api_base: str | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    keep_order: bool = False,
    cache_dir: str | Path | None = None,
    api_key: str | None = None,
) -> SelectResult:
    """Pick rows of an in-memory judged table; returns the chosen rows in output order.

    Each method reads only the options in ``METHOD_OPTIONS`` (and ``keep_order``); setting any
    other is a ValueError.  ``min_score`` is a floor applied first; the count (one of ``top_k``,
    ``top_frac`` (of the whole table) or ``budget``) then limits the rows that pass it.
    ``api_base``, ``api_key`` and ``cache_dir`` only serve ``embed_model`` and are not checked here:
    a pipeline passes its judges' ``api_base`` whatever the method.  The key is only sent.
    """
    check_options(method, {"budget": budget, "score_column": score_column, "min_score": min_score, "top_k": top_k,
                           "top_frac": top_frac, "tags_column": tags_column, "embedding_column": embedding_column,
                           "embed_model": embed_model, "threshold": threshold})
    notes: list[str] = []
    details: dict[str, Any] = {}
    all_rows = rows
    failed, left_out = failed_rows(rows, _columns_read(method, score_column, tags_column, embedding_column,
                                                       embed_model))
    if left_out:
        details["left_out"] = left_out
        notes.extend(f"left out {n} rows whose {judge} judgment failed or is missing" for judge, n in left_out.items())
    # the pool a selector sees: failed rows are gone (threshold reads statuses itself: its
    # --top-frac is a fraction of the whole file, failed rows included)
    pool = [i for i in range(len(rows)) if i not in failed] if method != "threshold" else list(range(len(rows)))
    if len(pool) != len(rows):
        rows = [rows[i] for i in pool]
        samples = [samples[i] for i in pool] if samples is not None else None
    limit = _count_limit(top_k, top_frac, budget)
    ranked = True
    if method == "threshold":
        indices, ranked = _threshold(rows, path, score_column or "alpagasus_score", min_score, limit, details)
    elif method == "instag":
        indices = _instag(all_rows, rows, path, tags_column, budget, notes, details)
    else:
        if embed_model and samples is None:
            raise ValueError("embedding samples needs the samples, not only rows")
        indices = _deita(
            rows, samples or [], path, budget, score_column or "deita_score", min_score, tags_column,
            embedding_column, embed_model, api_base, threshold, cache_dir, details, api_key,
        )
        if details.get("zero_vectors"):
            notes.append(f"{details['zero_vectors']} rows have an all-zero vector (never rejected, never block)")
    indices = [pool[i] for i in indices]
    rows = all_rows
    unreached = _unreached(limit, len(rows), len(indices), min_score)
    if unreached:
        notes.append(unreached)
    if ranked and any("selection_rank" in rows[idx] for idx in indices):
        notes.append("the input already had a selection_rank column: replaced by this selection's ranks")
    order = sorted(indices) if keep_order or not ranked else indices  # AlpaGasus keeps pool order (P-A5)
    rank = {idx: r for r, idx in enumerate(indices, start=1)}
    chosen = []
    for idx in order:
        row = dict(rows[idx])
        if ranked:  # AlpaGasus' threshold has no ranking to report
            row["selection_rank"] = rank[idx]
        chosen.append(row)
    return SelectResult(chosen, indices, len(rows), method, None, notes, details)


def _count_limit(top_k: int | None, top_frac: float | None, budget: int | None) -> tuple[str, float] | None:
    """The one count option given (``check_options`` refused more than one), by name."""
    for name, value in (("top_k", top_k), ("top_frac", top_frac), ("budget", budget)):
        if value is not None:
            return name, value
    return None


def _target(limit: tuple[str, float], n_rows: int) -> int:
    """Rows a count limit asks for; ``top_frac`` as ``top_k_select`` rounds it."""
    name, value = limit
    return math.floor(round(value * n_rows, 9)) if name == "top_frac" else int(value)


def _unreached(limit: tuple[str, float] | None, n_rows: int, selected: int, min_score: float | None) -> str | None:
    """The note for a count the method could not reach (every count option alike: the result
    is never padded, and a user must not mistake a short subset for the one asked for)."""
    if limit is None or selected >= _target(limit, n_rows):
        return None
    name, value = limit
    asked = f"{name.replace('_', '-')} {value}"
    if name == "top_frac":
        asked += f" ({_target(limit, n_rows)} rows)"
    floor = f"; min-score {min_score} applied first" if min_score is not None else ""
    return f"{asked} not reachable: selected {selected} of {n_rows} rows (no padding{floor})"


def _threshold(
    rows: list[dict[str, Any]],
    path: str,
    column: str,
    min_score: float | None,
    limit: tuple[str, float] | None,
    details: dict[str, Any],
) -> tuple[list[int], bool]:
    """AlpaGasus (a score floor, pool order, no ranking) or, with a count, the best rows by
    score, ranked.  Given both, the floor applies first and the count among rows that pass it:
    "at least 4.5, at most 1000 of them" is what a user asking for both means."""
    from winnow.selectors.threshold import threshold_select, top_k_select

    scores = _scores(rows, column, path)
    statuses = _statuses(rows, column)
    details["score_column"] = column
    if limit is None:
        tau = ALPAGASUS_MIN_SCORE if min_score is None else min_score
        details["min_score"] = tau
        return threshold_select(scores, statuses, tau), False
    if min_score is not None:
        details["min_score"] = min_score
        scores = _floor(scores, min_score)
    name, value = limit
    details[name] = value
    if name == "top_frac":
        return top_k_select(scores, statuses, frac=value), True
    return top_k_select(scores, statuses, k=int(value)), True


def _floor(scores: list[float | None], min_score: float) -> list[float | None]:
    """Scores below the floor become unscored, so no selector can pick them (inclusive)."""
    return [s if s is not None and s >= min_score else None for s in scores]


def _instag(
    all_rows: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    path: str,
    tags_column: str,
    budget: int | None,
    notes: list[str],
    details: dict[str, Any],
) -> list[int]:
    """InsTag's complexity-first diverse sampling over the pool's tag sets."""
    from winnow.selectors.instag import instag_select

    assert budget is not None  # check_options requires it
    if all_rows and not any(f"{tags_column}_raw" in row for row in all_rows):
        notes.append(f"'{tags_column}' was never normalised (no '{tags_column}_raw' column): InsTag counts "
                     "normalised, deduplicated tags (methods.md P-I2); run `winnow tags normalize` first")
    tag_sets = column_values(rows, tags_column, path, _tags_hint("instag"))
    for i, tags in enumerate(tag_sets):
        if tags is not None and not isinstance(tags, list):
            raise ValueError(f"{path}: row {i + 1}, field '{tags_column}': expected a list of tags")
    result = instag_select(tag_sets, budget)
    details.update(tags_column=tags_column, budget=budget, passes=result.passes,
                   empty_tag_samples=result.empty_tag_samples)
    if result.empty_tag_samples:
        notes.append(f"{result.empty_tag_samples} rows have no tags and are never selected")
    return list(result.indices)


def _columns_read(
    method: str, score_column: str | None, tags_column: str, embedding_column: str | None, embed_model: str | None
) -> list[str]:
    """The judged columns a method reads: a failure behind any of them keeps the row out."""
    if method == "threshold":
        return [score_column or "alpagasus_score"]
    if method == "instag":
        return [tags_column]
    columns = [score_column or "deita_score"]
    if embedding_column:
        columns.append(embedding_column)
    elif not embed_model:
        columns.append(tags_column)  # the multi-hot vectors come from the tags
    return columns


def judges_of_column(column: str) -> list[str]:
    """The judges whose status decides a column: ``alpagasus_score`` -> alpagasus; the combined
    ``deita_score`` -> both DEITA judges; a user judge's ``<judge>_<field>`` -> that judge."""
    if column == "deita_score":
        return ["deita_complexity", "deita_quality"]
    return [column.rsplit("_", 1)[0]] if "_" in column else [column]


def failed_rows(rows: list[dict[str, Any]], columns: list[str]) -> tuple[set[int], dict[str, int]]:
    """Rows that a failed (or missing) judgment behind ``columns`` keeps out of any selection,
    and how many each judge kept out.  A judge counts only where its ``<judge>_status`` column
    exists: a row whose status is anything but ``ok`` is out, whatever its value column holds
    (an InsTag failure left ``instag_tags`` empty, which DEITA's tag vectors would read as a
    zero vector and select: P-D9)."""
    failed: set[int] = set()
    counts: dict[str, int] = {}
    for column in columns:
        for judge in judges_of_column(column):
            status = f"{judge}_status"
            if not any(status in row for row in rows):
                continue
            out = [i for i, row in enumerate(rows) if row.get(status) != "ok"]
            if out:
                counts[judge] = len(out)
                failed.update(out)
    return failed, counts


def _deita(
    rows: list[dict[str, Any]],
    samples: list[Any],
    path: str,
    budget: int | None,
    score_column: str,
    min_score: float | None,
    tags_column: str,
    embedding_column: str | None,
    embed_model: str | None,
    api_base: str | None,
    threshold: float,
    cache_dir: str | Path | None,
    details: dict[str, Any],
    api_key: str | None = None,
) -> list[int]:
    """DEITA's score-first diverse selection.  A ``min_score`` floor drops rows before the walk,
    which is the same as stopping the score-sorted walk at the floor."""
    from winnow.selectors.deita import deita_select

    scores = _scores(rows, score_column, path)
    details["score_column"] = score_column
    if min_score is not None:
        floored = _floor(scores, min_score)
        details.update(min_score=min_score, below_min_score=sum(
            s is not None and f is None for s, f in zip(scores, floored, strict=True)))
        scores = floored
    if budget is not None:
        details["budget"] = budget
    vectors, source = _vectors(rows, samples, path, tags_column, embedding_column, embed_model, api_base, cache_dir,
                               api_key)
    result = deita_select(scores, vectors, budget, threshold)
    details.update(vectors=source, threshold=threshold, rejected=result.rejected, zero_vectors=result.zero_vectors)
    return list(result.indices)


def _vectors(
    rows: list[dict[str, Any]],
    samples: list[Any],
    path: str,
    tags_column: str,
    embedding_column: str | None,
    embed_model: str | None,
    api_base: str | None,
    cache_dir: str | Path | None,
    api_key: str | None = None,
) -> tuple[Any, str]:
    """DEITA's vectors and where they came from: a vector column, an embedding model, or by
    default the rows' tag sets as multi-hot vectors."""
    import numpy as np

    from winnow.selectors.deita import multi_hot

    if embedding_column:
        hint = ("--embedding-column names a column of precomputed vectors in the file; "
                "to embed the samples instead, use --embed-model")
        values = column_values(rows, embedding_column, path, hint)
        dims = {len(v) for v in values if isinstance(v, list)}
        if len(dims) != 1 or any(not isinstance(v, list) for v in values):
            raise ValueError(f"{path}: field '{embedding_column}': every row needs a vector of one length")
        return np.asarray(values, dtype=np.float32), f"column {embedding_column}"
    if embed_model:
        from winnow.engine.embeddings import embed_samples

        vectors = embed_samples(samples, embed_model, api_base=api_base, api_key=api_key, cache_dir=cache_dir)
        return vectors, f"embeddings from {embed_model}"
    return multi_hot(column_values(rows, tags_column, path, _tags_hint("deita"))), f"multi-hot tags from {tags_column}"
