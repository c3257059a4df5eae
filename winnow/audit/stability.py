"""``stability``: ask the judge again and see how much of the subset survives (issue 19 item 2).

AlpaGasus keeps rows at 4.5 and above; if the judge gives a row 4.5 today and 4.0 tomorrow, the
threshold selects noise.  This re-judges a random sample ``repeats`` times and reports
test-retest agreement (Spearman and exact agreement with the original judgment), the per-row
spread of scores, and the share of originally selected rows that stay selected, with bootstrap
95% intervals.  Each repeat is a judge whose fingerprint carries the repeat number: its requests
are the original's, byte for byte, but its cache keys differ, so repeats are cached (a second
call sends nothing) and never taken for the original judgment.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from winnow.judges.base import Judge, combine_fingerprint

__all__ = ["StabilityReport", "estimate_stability", "repeat_fingerprints", "repeated", "stability"]

DEFAULT_THRESHOLDS = {"alpagasus": 4.5}  # methods.md 1.4


MAX_KNOWN_REPEATS = 64  # repeat fingerprints recognised up to this repeat number (the default is 3)


def repeat_fingerprint(fingerprint: str, repeat: int, temperature: float | None = None) -> str:
    """The cache identity of repeat ``repeat`` of a judge whose fingerprint is ``fingerprint``."""
    return combine_fingerprint(fingerprint, f"repeat-{repeat}", temperature)


def repeat_fingerprints(fingerprint: str, temperatures: Any = (None,)) -> set[str]:
    """Every fingerprint a stability repeat of ``fingerprint`` may carry (``temperatures``: the
    ``--temperature`` values to consider; None is the judge's own).  Why: a repeat's records look
    like the original's (same judge, model, purpose, sample), and the report must tell them apart
    to count only the calls that produced a judged file."""
    return {repeat_fingerprint(fingerprint, r, t) for r in range(1, MAX_KNOWN_REPEATS + 1) for t in temperatures}


def repeated(judge: Judge, repeat: int, temperature: float | None = None) -> Judge:
    """``judge`` asked again: the same requests (``temperature`` aside), another cache identity."""
    fingerprint = repeat_fingerprint(judge.fingerprint, repeat, temperature)
    cls = type(judge)
    repeat_cls = type(f"{cls.__name__}Repeat{repeat}", (cls,), {"fingerprint": property(lambda self: fingerprint)})
    clone: Judge = object.__new__(repeat_cls)
    clone.__dict__.update(judge.__dict__)
    clone.__dict__.pop("_flat_names", None)
    clone.params = dict(judge.params)
    if temperature is not None:
        clone.params["temperature"] = temperature
    return clone


@dataclass
class StabilityReport:
    judge: str
    sampled: int
    repeats: int
    threshold: float | None
    requests: int
    figures: dict[str, float | None]
    intervals: dict[str, tuple[float, float] | None]
    failed_repeats: int = 0
    per_repeat: list[dict[str, float | None]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)  # the run's RunStats.as_dict(): calls, hits, cost
    # what was measured: the data file (path, sha256), model, judge fingerprint and options, the
    # score column; and how many sampled rows' file scores the cache confirms as this judge's
    provenance: dict[str, Any] = field(default_factory=dict)
    originals: dict[str, int] = field(default_factory=dict)  # confirmed / differs / not in cache
    warnings: list[str] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)  # figure -> why it (or its interval) is absent

    def lines(self) -> list[str]:
        out = [f"{self.judge}: {self.sampled} rows judged again {self.repeats} times "
               f"({self.requests} requests sent this call; {self.failed_repeats} repeat judgments failed)"]
        out += [f"  WARNING: {w}" for w in self.warnings]
        if self.stats:
            s = self.stats
            out.append(f"  judgments: {s.get('cache_hits', 0)} from cache, {s.get('calls', 0)} new; tokens "
                       f"{s.get('prompt_tokens', 0)} in, {s.get('completion_tokens', 0)} out; "
                       f"cost ${float(s.get('cost') or 0):.4f}")
        for name, value in self.figures.items():
            ci = self.intervals.get(name)
            shown = "undefined" if value is None else f"{value:.4f}"
            why = f"  ({self.notes[name]})" if name in self.notes else ""
            out.append(f"  {name}: {shown}" + (f"  95% CI [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "") + why)
        out += [f"  {name}: absent ({why})" for name, why in self.notes.items() if name not in self.figures]
        if self.threshold is not None:
            out.append(f"  (selection at score >= {self.threshold:g})")
        return out


def stability(
    data: str | Path,
    judge: str,
    model: str,
    *,
    sample: int = 200,
    repeats: int = 3,
    threshold: float | None = None,
    temperature: float | None = None,
    api_base: str | None = None,
    api_key: str | None = None,
    judge_options: Mapping[str, Any] | None = None,
    cache_dir: str | Path | None = None,
    settings: Any = None,
    seed: int = 0,
    resamples: int = 1000,
    unconfirmed_ok: bool = False,
) -> StabilityReport:
    """Re-judge a random sample of ``data`` (a judged file) ``repeats`` times and measure it.

    The file's scores are the "original" judgment only if this judge, model and options made
    them: the cache is asked for each sampled row's original judgment (sending nothing), and a
    sample none of whose scores it confirms is refused (``unconfirmed_ok`` runs it anyway, with
    a warning); some unconfirmed rows are a warning."""
    import numpy as np

    from winnow.api import model_config, open_cache
    from winnow.cache.runs import append_run
    from winnow.engine.config import EngineSettings, JudgeRun
    from winnow.engine.runner import Engine
    from winnow.engine.stats import RunStats

    base, chosen = _sampled(data, judge, model, sample, repeats, judge_options, seed)
    score_field = _score_field(base)
    column = f"{base.name}_{score_field}"
    original = np.asarray([float(s.row[column]) for s in chosen])
    cfg = model_config(model, api_base, api_key)
    runs = [JudgeRun(repeated(base, r, temperature), cfg) for r in range(1, repeats + 1)]
    run_stats = RunStats()
    with open_cache(cache_dir) as cache:
        originals = check_originals(cache, chosen, JudgeRun(base, cfg), column, score_field)
        warnings = _original_warnings(originals, base.name, model, judge_options, unconfirmed_ok)
        try:
            verdicts = Engine(cache, settings or EngineSettings(), run_stats).run(chosen, runs)
        finally:  # logged like rate's runs, interrupted or not: what this audit sent and spent
            append_run(cache.directory, run_stats.as_dict(), command="audit stability", data=str(data),
                       judges=[base.name], models=[model], sample=len(chosen), repeats=repeats)
    again = np.full((repeats, len(chosen)), np.nan)
    failed = 0
    for r, row in enumerate(verdicts):
        for i, verdict in enumerate(row):
            value = verdict.values.get(score_field) if verdict.status == "ok" else None
            if isinstance(value, int | float):
                again[r, i] = float(value)
            else:
                failed += 1
    tau = threshold if threshold is not None else DEFAULT_THRESHOLDS.get(base.name)
    figures, intervals, per_repeat = _measure(original, again, tau, resamples, seed)
    notes = _interval_notes(figures, intervals, resamples)
    if tau is None:
        notes[KEPT] = (f"no --threshold, and {base.name} has no default selection threshold (AlpaGasus' is 4.5): "
                       "pass --threshold to measure the share of selected rows that stay selected")
    from winnow.audit.trust_files import file_identity

    provenance = {"data": file_identity(data), "model": model, "api_base": api_base,
                  "judge_fingerprint": base.fingerprint, "judge_options": dict(judge_options or {}),
                  "score_column": column, "temperature": temperature}
    return StabilityReport(base.name, len(chosen), repeats, tau, run_stats.requests, figures, intervals, failed,
                           per_repeat, run_stats.as_dict(), provenance, originals, warnings, notes)


KEPT = "selected rows that stay selected"


def _score_field(judge: Judge) -> str:
    """The value a judge's score is: ``score``, or a user judge's declared ``score_field``."""
    return str(getattr(judge, "score_field", None) or "score")


def check_originals(cache: Any, chosen: list[Any], run: Any, column: str, score_field: str) -> dict[str, int]:
    """How many sampled rows' file scores the cache confirms as this judge's (same fingerprint,
    model, address and options), how many it holds with another value, and how many it lacks.
    Asks the cache only (``Engine.plan``): nothing is sent."""
    from winnow.engine.runner import Engine

    plan = Engine(cache).plan(chosen, [run])
    counts = {"confirmed": 0, "differs": 0, "not in cache": 0}
    for sample, verdict in zip(chosen, plan.verdicts[0], strict=True):
        if verdict is None:
            counts["not in cache"] += 1
            continue
        value = verdict.values.get(score_field) if verdict.status == "ok" else None
        same = isinstance(value, int | float) and abs(float(value) - float(sample.row[column])) < 1e-9
        counts["confirmed" if same else "differs"] += 1
    return counts


def _original_warnings(originals: dict[str, int], judge: str, model: str, options: Mapping[str, Any] | None,
                       unconfirmed_ok: bool) -> list[str]:
    """Refuse a sample the cache confirms none of (the file was judged by another model or other
    options, or the cache is another one): repeats compared with it are not test-retest."""
    total = sum(originals.values())
    unconfirmed = total - originals["confirmed"]
    if not unconfirmed:
        return []
    shown = ", ".join(f"{k}={v}" for k, v in (options or {}).items()) or "default options"
    what = (f"{unconfirmed} of {total} sampled rows' scores are not confirmed by the cache as judgments of {judge} "
            f"by {model} ({shown}): {originals['differs']} differ from its cached judgment, "
            f"{originals['not in cache']} are not in it. If the file was judged by another model, other "
            "--judge-option values, another --api-base or another cache, this is not test-retest")
    if originals["confirmed"] == 0 and not unconfirmed_ok:
        raise ValueError(f"{what}. Pass the model, options, --api-base and --cache-dir the file was rated with, "
                         "or --unconfirmed-original to compare anyway")
    return [what]


def _interval_notes(figures: Mapping[str, float | None], intervals: Mapping[str, Any],
                    resamples: int) -> dict[str, str]:
    """Why a figure has no interval: every figure has one or says why not."""
    notes = {}
    for name, value in figures.items():
        if intervals.get(name) is None:
            notes[name] = ("no sampled row was selected at the threshold" if value is None and name == KEPT
                           else "undefined on this sample" if value is None
                           else "no interval: --resamples 0" if resamples <= 0
                           else "no interval: undefined in too many resamples")
    return notes


def _sampled(data: str | Path, judge: str, model: str, sample: int, repeats: int,
             judge_options: Mapping[str, Any] | None, seed: int) -> tuple[Judge, list[Any]]:
    """(the judge, the seeded sample of rows to judge again): one choice shared by the audit and
    its dry run, so the price quoted is the price of these very rows."""
    from winnow.api import make_judges
    from winnow.data import load
    from winnow.local.files import is_local_model

    if repeats < 1 or sample < 1:
        raise ValueError("--sample and --repeats must be at least 1")
    if is_local_model(model):
        raise ValueError("stability audits an API judge; for the local judge, serve it (winnow serve-local) and "
                         "pass --model local --api-base URL")
    (base,) = make_judges([judge], model, dict(judge_options or {}), None)
    column, status = f"{base.name}_{_score_field(base)}", f"{base.name}_status"
    dataset = load(data)
    eligible = [s for s in dataset.samples if s.row.get(status, "ok") == "ok"
                and isinstance(s.row.get(column), int | float) and not isinstance(s.row.get(column), bool)]
    if len(eligible) < 3:
        raise ValueError(f"{data}: {len(eligible)} rows with an ok '{column}'; rate them first")
    chosen = sorted(random.Random(seed).sample(eligible, min(sample, len(eligible))), key=lambda s: s.index)
    return base, chosen


def estimate_stability(
    data: str | Path,
    judge: str,
    model: str,
    *,
    sample: int = 200,
    repeats: int = 3,
    temperature: float | None = None,
    api_base: str | None = None,
    judge_options: Mapping[str, Any] | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
) -> Any:
    """What ``stability`` with the same arguments would send: a ``CostEstimate`` with one entry
    per repeat, through rate's dry-run machinery (cached repeats count as cached; replies priced
    at the mean of cached ones).  Sends nothing and creates no cache."""
    from winnow.audit.costs import CostEstimate, _cache_facts, _pricing, estimate_judge, open_for_reading
    from winnow.engine.config import EngineSettings, JudgeRun, ModelConfig
    from winnow.engine.runner import Engine

    base, chosen = _sampled(data, judge, model, sample, repeats, judge_options, seed)
    result = CostEstimate(rows=len(chosen))
    cache, result.cache_note = open_for_reading(cache_dir)
    try:
        engine = Engine(cache, EngineSettings())
        facts = _cache_facts(cache)
        pricing = _pricing(facts, model, api_base, False, {})
        result.counter = pricing.counter
        for r in range(1, repeats + 1):
            jr = JudgeRun(repeated(base, r, temperature), ModelConfig(model=model, api_base=api_base))
            # a repeat's replies are as long as the original's: its own cached ones, else the original's
            result.judges.append(estimate_judge(engine, jr, chosen, facts, pricing,
                                                [jr.judge.fingerprint, base.fingerprint]))
    finally:
        cache.close()
    return result


def _measure(original: Any, again: Any, tau: float | None, resamples: int,
             seed: int) -> tuple[dict[str, float | None], dict[str, tuple[float, float] | None], list[Any]]:
    import numpy as np

    from winnow.audit.agreement import bootstrap_interval, statistic
    from winnow.audit.agreement import spearman as rho

    spearman = statistic(lambda a, b: rho(a, b, omit_nan=True))  # a failed repeat is left out

    mean_repeat = np.nanmean(again, axis=0)
    figures: dict[str, float | None] = {}
    intervals: dict[str, tuple[float, float] | None] = {}

    def put(name: str, fn: Any, x: Any, y: Any) -> None:
        value = fn(x, y)
        figures[name] = None if math.isnan(value) else value
        intervals[name] = bootstrap_interval(fn, x, y, resamples, seed) if figures[name] is not None else None

    exact = np.nanmean(again == original[None, :], axis=0)  # per row: share of repeats equal to the original
    put("test-retest Spearman (original vs mean of repeats)", spearman, original, mean_repeat)
    put("exact agreement with the original", lambda a, b: float(np.mean(b)), original, exact)
    spread = np.nanstd(np.vstack([original[None, :], again]), axis=0)
    put("per-row spread (std of original + repeats)", lambda a, b: float(np.mean(b)), original, spread)
    per_repeat = [{"spearman": spearman(original, again[r])} for r in range(again.shape[0])]
    if tau is not None:
        selected = original >= tau
        if selected.any():
            kept = np.nanmean(again[:, selected] >= tau, axis=0)  # per selected row: share of repeats kept
            put("selected rows that stay selected", lambda a, b: float(np.mean(b)), original[selected], kept)
        else:
            figures["selected rows that stay selected"] = None
            intervals["selected rows that stay selected"] = None
    return figures, intervals, per_repeat
