"""The DEITA evol labels table: what EVOL COMPLEXITY / EVOL QUALITY are for (methods.md 3.1-3.4).

In the paper, ranking a seed's M evolutions jointly yields 6 (text, score) pairs per seed: the
training data of a complexity or quality scorer (``hkust-nlp/deita-*-scorer-data`` is this
table).  ``rate`` with ``--mode evol`` writes it next to its output, one row per variant:
the seed's id, the turn, the evolution step (0 = the seed) and the operation that made it, the
instruction (and, for quality, the response) and the score the ranking gave it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["evol_label_rows", "labels_path", "write_evol_labels"]

COLUMNS = ("judge", "seed_id", "turn", "step", "operation", "instruction", "response", "score", "model")


def labels_path(output: Path) -> Path:
    """``rated.jsonl`` -> ``rated.evol_labels.parquet``."""
    return output.with_name(output.stem + ".evol_labels.parquet")


def evol_label_rows(judge: str, model: str, samples: Sequence[Any], verdicts: Sequence[Any]) -> list[dict[str, Any]]:
    from winnow.judges.deita import EVOL_LABELS

    rows = []
    for sample, verdict in zip(samples, verdicts, strict=True):
        for label in verdict.values.get(EVOL_LABELS) or []:
            rows.append({"judge": judge, "seed_id": sample.id, **label, "model": model})
    return rows


def write_evol_labels(rows: list[dict[str, Any]], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {name: [row.get(name) for row in rows] for name in COLUMNS}
    types = {"turn": pa.int32(), "step": pa.int32(), "score": pa.float64()}
    table = pa.table({name: pa.array(values, type=types.get(name, pa.string())) for name, values in columns.items()})
    pq.write_table(table, path)
    return path
