"""``select``: read a judged file, pick the subset, write it in the input's own format.

The algorithms live in ``winnow.selectors`` (table in, indices out); this module only
reads columns, reports what happened and writes rows.  Rows whose judge failed are never
selected, and a budget the method cannot reach is reported, never padded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["METHODS", "SelectResult", "column_values", "failed_rows", "judges_of_column", "select", "select_rows"]

METHODS = ("threshold", "instag", "deita")


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


def column_values(rows: list[dict[str, Any]], column: str, path: str) -> list[Any]:
    """A column's values; a column absent from every row is an error naming it."""
    if rows and not any(column in row for row in rows):
        present = sorted({k for row in rows[:50] for k in row})
        raise ValueError(f"{path}: no column '{column}' (columns: {', '.join(present)}); rate with the judge first")
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
    return [_number(v, path, i, column) for i, v in enumerate(column_values(rows, column, path))]


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

    ``options`` are those of ``select_rows``.  The subset is written in the input's format.
    """
    from winnow.data import load, save

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
    tags_column: str = "instag_tags",
    embedding_column: str | None = None,
    embed_model: str | None = None,
    api_base: str | None = None,
    threshold: float = 0.9,
    keep_order: bool = False,
    cache_dir: str | Path | None = None,
) -> SelectResult:
    """Pick rows of an in-memory judged table; returns the chosen rows in output order."""
    if method not in METHODS:
        raise ValueError(f"unknown method '{method}': use one of {', '.join(METHODS)}")
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
    if method == "threshold":
        from winnow.selectors.threshold import threshold_select, top_k_select

        column = score_column or "alpagasus_score"
        scores = _scores(rows, column, path)
        statuses = _statuses(rows, column)
        if top_k is not None or top_frac is not None or (budget is not None and min_score is None):
            indices = top_k_select(scores, statuses, k=top_k if top_k is not None else budget, frac=top_frac)
        else:
            tau = 4.5 if min_score is None else min_score  # methods.md 1.4: tau = 4.5, inclusive
            indices = threshold_select(scores, statuses, tau)
            details["min_score"] = tau
            keep_order = True  # AlpaGasus keeps pool order (P-A5)
        details["score_column"] = column
    elif method == "instag":
        from winnow.selectors.instag import instag_select

        if budget is None:
            raise ValueError("a budget is required for method instag")
        if all_rows and not any(f"{tags_column}_raw" in row for row in all_rows):
            notes.append(f"'{tags_column}' was never normalised (no '{tags_column}_raw' column): InsTag counts "
                         "normalised, deduplicated tags (methods.md P-I2); run `winnow tags normalize` first")
        tag_sets = column_values(rows, tags_column, path)
        for i, tags in enumerate(tag_sets):
            if tags is not None and not isinstance(tags, list):
                raise ValueError(f"{path}: row {i + 1}, field '{tags_column}': expected a list of tags")
        result = instag_select(tag_sets, budget)
        indices = list(result.indices)
        details.update(passes=result.passes, empty_tag_samples=result.empty_tag_samples)
        if result.empty_tag_samples:
            notes.append(f"{result.empty_tag_samples} rows have no tags and are never selected")
    else:
        if embed_model and samples is None:
            raise ValueError("embedding samples needs the samples, not only rows")
        indices, deita_details = _deita(
            rows, samples or [], path, budget, score_column or "deita_score", tags_column, embedding_column,
            embed_model, api_base, threshold, cache_dir,
        )
        details.update(deita_details)
        if deita_details.get("zero_vectors"):
            notes.append(f"{deita_details['zero_vectors']} rows have an all-zero vector (never rejected, never block)")
    indices = [pool[i] for i in indices]
    rows = all_rows
    if budget is not None and len(indices) < budget:
        notes.append(f"budget {budget} not reachable: selected {len(indices)} of {len(rows)} rows (no padding)")
    order = sorted(indices) if keep_order else indices
    rank = {idx: r for r, idx in enumerate(indices, start=1)}
    add_rank = "min_score" not in details  # AlpaGasus' threshold has no ranking to report
    chosen = []
    for idx in order:
        row = dict(rows[idx])
        if add_rank:
            row["selection_rank"] = rank[idx]
        chosen.append(row)
    return SelectResult(chosen, indices, len(rows), method, None, notes, details)


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
    tags_column: str,
    embedding_column: str | None,
    embed_model: str | None,
    api_base: str | None,
    threshold: float,
    cache_dir: str | Path | None,
) -> tuple[list[int], dict[str, Any]]:
    import numpy as np

    from winnow.selectors.deita import deita_select, multi_hot

    scores = _scores(rows, score_column, path)
    source: str
    if embedding_column:
        values = column_values(rows, embedding_column, path)
        dims = {len(v) for v in values if isinstance(v, list)}
        if len(dims) != 1 or any(not isinstance(v, list) for v in values):
            raise ValueError(f"{path}: field '{embedding_column}': every row needs a vector of one length")
        vectors: Any = np.asarray(values, dtype=np.float32)
        source = f"column {embedding_column}"
    elif embed_model:
        from winnow.engine.embeddings import embed_samples

        vectors = embed_samples(samples, embed_model, api_base=api_base, cache_dir=cache_dir)
        source = f"embeddings from {embed_model}"
    else:
        vectors = multi_hot(column_values(rows, tags_column, path))
        source = f"multi-hot tags from {tags_column}"
    result = deita_select(scores, vectors, budget, threshold)
    return list(result.indices), {
        "vectors": source,
        "threshold": threshold,
        "rejected": result.rejected,
        "zero_vectors": result.zero_vectors,
        "score_column": score_column,
    }
