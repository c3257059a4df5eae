"""``bias``: does a judge reward something other than quality?  (issue 19 item 3)

For one judge's scores: the rank correlation (Spearman, with a bootstrap 95% interval) with the
response's length, the instruction's length and the number of turns; the mean score per source
model where a column names the model that wrote the response (self-preference shows when the
judge is that model's family); and a row-order check, the correlation of the score with the
row's position in the file, which should be flat (a drift means the judge, or the file's order,
moved the scores).  Rows whose judgment failed are left out and counted.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BiasReport", "bias_report"]

FLAT = 0.1  # |rho| below this reads as no relation, in the plain-words lines
FAMILIES = ("gpt", "claude", "llama", "qwen", "mixtral", "mistral", "gemini", "gemma", "deepseek", "phi", "command",
            "granite", "smollm", "yi", "falcon", "vicuna")


def family(model: str | None) -> str | None:
    """The model family a name belongs to (``openai/gpt-4o-mini`` -> gpt), for self-preference."""
    name = (model or "").lower().rsplit("/", 1)[-1]
    return next((f for f in FAMILIES if name.startswith(f) or f"-{f}" in name), None)


@dataclass
class BiasReport:
    judge: str
    n: int
    left_out: int
    correlations: dict[str, tuple[float | None, tuple[float, float] | None]]  # name -> (rho, 95% CI)
    by_source: dict[str, tuple[int, float, tuple[float, float] | None]] = field(default_factory=dict)
    points: list[tuple[float, float]] = field(default_factory=list)  # (response length, score), for the plot
    judge_family: str | None = None
    no_score: int = 0  # status ok (or none) but no number in the score column: not a failure
    score_column: str = ""
    source_column: str | None = None
    no_source: int = 0  # judged rows with no source: outside every per-source mean

    def lines(self) -> list[str]:
        words = []
        if self.left_out:
            words.append(f"{self.left_out} failed")
        if self.no_score:
            words.append(f"{self.no_score} with no score in {self.score_column}")
        left = f" ({', '.join(words)}, left out)" if words else ""
        out = [f"{self.judge}: {self.n} judged rows{left}"]
        for name, (rho, ci) in self.correlations.items():
            shown = "undefined" if rho is None else f"{rho:+.3f}"
            interval = f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else ""
            out.append(f"  score vs {name}: Spearman {shown}{interval}{_reading(rho, ci)}")
        for source, (n, mean, ci) in sorted(self.by_source.items()):
            interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
            own = "  (the judge's own family: self-preference shows here)" if (
                self.judge_family and family(source) == self.judge_family) else ""
            why = "" if ci else ("  (no interval: fewer than 3 rows)" if n < 3 else "  (no interval: all scores equal)")
            out.append(f"  source {source}: mean score {mean:.2f}{interval} over {n} rows{own}{why}")
        if self.no_source:
            out.append(f"  {self.no_source} judged rows have no {self.source_column}: left out of the per-source means")
        return out


def _reading(rho: float | None, ci: tuple[float, float] | None) -> str:
    if rho is None:
        return ""
    if ci is not None and ci[0] <= 0.0 <= ci[1]:
        return "  (no evidence of a relation)"
    return "  (weak)" if abs(rho) < FLAT else "  (a relation: scores move with it)"


def _lengths(row: dict[str, Any], sample: Any) -> tuple[int, int, int]:
    """(response length, instruction length, turns) in characters, from the sample's turns."""
    exchanges = sample.exchanges()
    response = sum(len(r) for _, r in exchanges)
    instruction = sum(len(q) for q, _ in exchanges)
    return response, instruction, len(exchanges)


def _check_source(samples: Sequence[Any], source_column: str | None) -> None:
    """A source column no row has is a typo: the per-source means would silently be absent."""
    if source_column is None or any(source_column in s.row for s in samples):
        return
    from winnow.audit.columns import did_you_mean, table_columns

    columns = table_columns([s.row for s in samples])
    raise ValueError(f"--source-column {source_column}: no row has this column{did_you_mean(source_column, columns)} "
                     f"(columns: {', '.join(columns)})")


def bias_report(samples: Sequence[Any], judge: str, *, score_column: str | None = None,
                source_column: str | None = None, resamples: int = 1000, seed: int = 0,
                judge_model: str | None = None, status_column: str | None = None) -> BiasReport:
    """``status_column``: the judge's status (default ``<judge>_status``; a side's own with
    ``rate --side both``).  A row whose judgment failed and one whose score column is empty are
    counted apart: a wrong column must not read as "every judgment failed"."""
    import numpy as np
    from scipy import stats

    from winnow.audit import agreement

    _check_source(samples, source_column)
    column = score_column or f"{judge}_score"
    status = status_column or f"{judge}_status"
    scores: list[float] = []
    features: dict[str, list[float]] = defaultdict(list)
    sources: dict[str, list[float]] = defaultdict(list)
    left_out = no_score = no_source = 0
    for position, sample in enumerate(samples):
        row = sample.row
        value = row.get(column)
        if row.get(status, "ok") != "ok":
            left_out += 1
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            no_score += 1
            continue
        response, instruction, turns = _lengths(row, sample)
        scores.append(float(value))
        features["response length"].append(response)
        features["instruction length"].append(instruction)
        features["number of turns"].append(turns)
        features["row position"].append(position)
        if source_column and row.get(source_column) not in (None, ""):
            sources[str(row[source_column])].append(float(value))
        elif source_column:
            no_source += 1
    y = np.asarray(scores)
    correlations: dict[str, tuple[float | None, tuple[float, float] | None]] = {}

    spearman = agreement.statistic(agreement.spearman)

    for name, values in features.items():
        x = np.asarray(values, dtype=float)
        rho = spearman(x, y) if len(y) >= 3 else float("nan")
        if math.isnan(rho):
            correlations[name] = (None, None)
            continue
        correlations[name] = (rho, agreement.bootstrap_interval(spearman, x, y, resamples, seed))
    by_source: dict[str, tuple[int, float, tuple[float, float] | None]] = {}
    for source, values in sources.items():
        arr = np.asarray(values)
        ci = None
        if len(arr) >= 3 and resamples > 0 and np.ptp(arr) > 0:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", stats.DegenerateDataWarning)
                res = stats.bootstrap((arr,), np.mean, n_resamples=resamples, method="percentile",
                                      random_state=np.random.default_rng(seed))
            ci = (float(res.confidence_interval.low), float(res.confidence_interval.high))
        by_source[source] = (len(arr), float(arr.mean()), ci)
    points = list(zip(features["response length"], scores, strict=True))
    return BiasReport(judge, len(scores), left_out, correlations, by_source, points, family(judge_model),
                      no_score, column, source_column, no_source)
