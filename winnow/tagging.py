"""``normalize``: canonicalise the InsTag tags of a tagged file (methods.md 2.4).

Writes the rows back with normalised ``instag_tags`` (the judge's raw tags move to
``instag_tags_raw``), ``instag_complexity`` recounted, and a readable tag map next to the
output, so a user can see what every original tag became.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["NormalizeResult", "normalize", "tag_map_path"]


@dataclass
class NormalizeResult:
    rows: list[dict[str, Any]]
    vocab_sizes: list[tuple[str, int]]
    tag_map: dict[str, str | None]
    output: Path | None
    tag_map_path: Path | None
    alpha: int | None
    min_support: int | None
    from_raw: bool = False  # the input was normalised before: its <column>_raw tags were the start


def tag_map_path(output: Path) -> Path:
    """The readable tag map written beside ``output`` (``n.jsonl`` -> ``n.tagmap.json``)."""
    return output.with_name(output.stem + ".tagmap.json")


def normalize(
    data: str | Path | list[dict[str, Any]],
    *,
    output: str | Path | None = None,
    tags_column: str = "instag_tags",
    alpha: int | str | None = "auto",
    rule: bool = True,
    embed_model: str | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    eps: float = 0.05,
    association: bool = True,
    min_support: int | str = "auto",
    min_confidence: float = 0.99,
    cache_dir: str | Path | None = None,
    like: Any = None,
    layout: str | None = None,
    column_map: dict[str, str] | None = None,
) -> NormalizeResult:
    """Normalise tags; every step switchable (``alpha=None``, ``rule=False``, no
    ``embed_model``, ``association=False``).  ``api_key`` is only sent with the embedding
    requests.  Writes the output and its tag map (``tag_map_path``) atomically."""
    from winnow.data import load, save
    from winnow.data.writers import write_text
    from winnow.selection import column_values
    from winnow.selectors.tags import normalize_tags

    if output is not None:
        from winnow.data.writers import check_output_suffix

        check_output_suffix(Path(output))  # before the work (an embedding model may be called)
    if isinstance(data, list):
        rows, dataset, name = data, like, "rows"
    else:
        dataset = load(data, layout=layout, column_map=column_map)
        rows, name = [s.row for s in dataset.samples], str(data)
    raw_column = f"{tags_column}_raw"
    # A file normalised before keeps the judge's own tags in <column>_raw: start from those, or the
    # second run would normalise normalised tags and overwrite the judge's with them.
    renormalised = any(raw_column in row for row in rows)
    raw = column_values(rows, raw_column if renormalised else tags_column, name)
    for i, tags in enumerate(raw):
        if tags is not None and not (isinstance(tags, list) and all(isinstance(t, str) for t in tags)):
            field = raw_column if renormalised else tags_column
            raise ValueError(f"{name}: row {i + 1}, field '{field}': expected a list of tag strings")
    embed = None
    if embed_model:
        from winnow.engine.embeddings import embed_texts

        def embed(texts: list[str]) -> Any:
            return embed_texts(texts, embed_model, api_base=api_base, api_key=api_key, cache_dir=cache_dir)

    result = normalize_tags(
        raw, alpha=alpha, rule=rule, semantic_embed=embed, eps=eps, association=association,  # type: ignore[arg-type]
        min_support=min_support, min_confidence=min_confidence,  # type: ignore[arg-type]
    )
    out_rows = []
    prefix = tags_column.rsplit("_", 1)[0]
    for row, original, tags in zip(rows, raw, result.tag_lists, strict=True):
        new = dict(row)
        new[raw_column] = original
        new[tags_column] = tags
        if f"{prefix}_complexity" in new or tags_column == "instag_tags":
            new[f"{prefix}_complexity"] = None if tags is None else len(tags)
        out_rows.append(new)
    out_path = map_path = None
    if output is not None:
        out_path = Path(output)
        save(out_rows, out_path, like=dataset)
        map_path = tag_map_path(out_path)
        write_text(map_path, json.dumps(
            {"vocab_sizes": result.vocab_sizes, "alpha": result.alpha, "min_support": result.min_support,
             "tag_map": dict(sorted(result.tag_map.items()))},
            ensure_ascii=False, indent=1,
        ))
    return NormalizeResult(out_rows, result.vocab_sizes, result.tag_map, out_path, map_path,
                           result.alpha, result.min_support, renormalised)
