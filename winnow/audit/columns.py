"""Which column holds a judge's score, and on which scale: shared by ``agree`` and ``audit bias``.

Why one place: a judge's scores reach the audits under several spellings (``alpagasus_score``;
``chosen_alpagasus_score`` / ``rejected_alpagasus_score`` from ``rate --side both``; a user
judge's ``<judge>_<score_field>``), and a wrong guess does not fail, it measures the wrong thing:
integer bins over the observed range instead of AlpaGasus' 0-5 in half points, or "0 rows with a
score" for a judge whose score field is not ``score``.  So the column and the scale are resolved
from what is declared (a built-in's known scale, a judge.yaml's ``score_field`` and range), a
name that matches nothing is an error naming the columns there are, and the scale used is said.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from winnow.hints import did_you_mean

__all__ = ["SIDES", "ResolvedScore", "did_you_mean", "judge_of_column", "resolve_score", "score_scale",
           "side_of", "table_columns"]

SIDES = ("chosen_", "rejected_")  # ``rate --side both`` prefixes each judge's columns with the side


def table_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every column any row has, in first-seen order (a column only some rows carry still counts)."""
    return list(dict.fromkeys(c for row in rows for c in row))


def side_of(column: str) -> str:
    """The ``rate --side both`` prefix a column carries (``chosen_``), or ''."""
    return next((side for side in SIDES if column.startswith(side)), "")


def judge_of_column(column: str) -> str:
    """The judge a score column belongs to: ``chosen_alpagasus_score`` -> alpagasus, so a side's
    column is measured on its judge's scale (it is the same judge, on the other response)."""
    column = column[len(side_of(column)):]
    return column.rsplit("_", 1)[0] if "_" in column else column


def _judges_in(columns: Iterable[str]) -> list[str]:
    """Judges the table carries, by their ``<judge>_status`` columns (side prefixes removed)."""
    found: dict[str, None] = {}
    for c in columns:
        if c.endswith("_status") and c != "status":
            name = c[: -len("_status")]
            found.setdefault(name[len(side_of(name)):], None)
    return list(found)


@dataclass
class ResolvedScore:
    """The score column an audit reads, the judge it belongs to, and that judge's declaration."""

    column: str
    judge: str
    user_judge: Any = None  # the loaded judge.yaml, when one was given: its scale and score_field

    @property
    def status_column(self) -> str:
        """``<side><judge>_status``: a side's judgment fails or succeeds on its own."""
        return f"{side_of(self.column)}{self.judge}_status"


def load_declared_judge(spec: str | Path) -> Any:
    """A judge.yaml (or folder holding one) as ``rate --judge PATH`` reads it."""
    from winnow.judges.user import load_user_judge

    path = Path(spec)
    if not path.exists():
        raise FileNotFoundError(f"--user-judge {spec}: no such file or folder")
    return load_user_judge(path, {})


def resolve_score(columns: Sequence[str], *, judge: str | None = None, score_column: str | None = None,
                  user_judge: str | Path | None = None, where: str = "the file") -> ResolvedScore:
    """The column holding ``judge``'s score (or ``score_column`` checked), with its judge.

    ``judge`` is a built-in name, a user judge's name, or a path to its judge.yaml (as ``rate
    --judge`` takes it); ``user_judge`` names the judge.yaml explicitly.  A judge or column the
    table does not have is an error that lists what it has, with the closest name."""
    from winnow.judges.registry import BUILTIN

    declared = load_declared_judge(user_judge) if user_judge is not None else None
    if judge is not None and declared is None and judge.replace("_", "-") not in BUILTIN and Path(judge).exists():
        declared = load_declared_judge(judge)  # `--judge examples/judges/helpfulness`, as rate takes it
    present = set(columns)
    if score_column is not None:
        if score_column not in present:
            numeric_hint = did_you_mean(score_column, columns)
            raise ValueError(f"--score-column {score_column}: {where} has no such column{numeric_hint} "
                             f"(columns: {', '.join(columns)})")
        return ResolvedScore(score_column, declared.name if declared else judge_of_column(score_column), declared)
    name = declared.name if declared is not None else str(judge).replace("-", "_")
    field = getattr(declared, "score_field", None) or "score"
    candidates = [f"{name}_{field}"] + [f"{side}{name}_{field}" for side in SIDES]
    found = [c for c in candidates if c in present]
    if len(found) == 1:
        return ResolvedScore(found[0], name, declared)
    if len(found) > 1:
        raise ValueError(f"--judge {judge}: {where} holds {' and '.join(found)}: name the one to audit with "
                         f"--score-column")
    judges = _judges_in(columns)
    if name in judges or any(c.startswith(f"{name}_") for c in present):
        numeric = [c for c in columns if c.startswith(f"{name}_") and not c.endswith(("_status", "_error"))]
        raise ValueError(f"--judge {judge}: {where} has no {name}_{field} column ({name}'s columns: "
                         f"{', '.join(numeric) or 'none'}); a user judge whose score_field is not '{field}' "
                         "needs its judge.yaml (--user-judge PATH), or name the column with --score-column")
    known = sorted(set(judges) | {b.replace("-", "_") for b in BUILTIN})
    raise ValueError(f"--judge {judge}: no judge '{name}' in {where} (no {name}_{field} column; judges there: "
                     f"{', '.join(judges) or 'none'}){did_you_mean(name, known)}")


def score_scale(resolved: ResolvedScore, values: Sequence[float]) -> tuple[tuple[float, float, float], str]:
    """(low, high, step) of the judge's bins and where they come from, in words for the output.

    A built-in's scale is known; a user judge's is its declared range (judge.yaml ``score_range``
    or the score field's min/max), in steps of 1, or 0.5 where its scores carry half points (a
    declared 1-10 judge that says 7.5 would otherwise be rounded); an undeclared judge's is the
    observed range, and the words say so, since kappa then depends on the sample."""
    from winnow.audit.agreement import SCALES

    step = _step(values)
    if resolved.judge in SCALES:
        return SCALES[resolved.judge], f"{resolved.judge}'s scale"
    declared = getattr(resolved.user_judge, "score_range", None)
    if declared is not None:
        lo, hi = float(declared[0]), float(declared[1])
        if hi > lo:
            return (lo, hi, step), f"{resolved.judge}'s declared score range (judge.yaml)"
    if not values:
        return (0.0, 1.0, 1.0), "no scores"
    lo, hi = math.floor(min(values) / step) * step, math.ceil(max(values) / step) * step
    hint = "" if resolved.user_judge is not None else "; pass --user-judge PATH for its declared range"
    words = f"the observed range: {resolved.judge}'s scale is not declared{hint}"
    return (float(lo), float(max(hi, lo + step)), step), words


def _step(values: Sequence[float]) -> float:
    """1 for integer scores, 0.5 for half points: the finest grid the scores sit on (else 1)."""
    if all(float(v).is_integer() for v in values):
        return 1.0
    if all(float(v * 2).is_integer() for v in values):
        return 0.5
    return 1.0
