"""Carries out a ``Pipeline``: rate with every judge, normalise tags, select, write outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from winnow.pipeline import Pipeline, PipelineError, PipelineResult


def _suffix(path: str) -> str:
    suffix = Path(path).suffix
    return suffix if suffix else ".jsonl"


class PipelineDetached(Exception):
    """``run --batch --detach``: the judgments were submitted as batch job ``job``; run the
    pipeline again once ``winnow batch status`` says it is done (everything is then cached)."""

    def __init__(self, job: str) -> None:
        super().__init__(job)
        self.job = job


def _rate_in_batches(p: Pipeline, detach: bool, poll_seconds: float) -> Any:
    from winnow.batch.driver import submit
    from winnow.cache.store import default_cache_dir

    rate_args = {
        "data": p.input, "judges": [s.name for s in p.judges], "model": p.model or "",
        "judge_specs": [{"name": s.name, "options": dict(s.options)} for s in p.judges],
        "judge_models": {s.name.replace("-", "_"): s.model for s in p.judges if s.model} or None,
        "api_base": p.api_base, "on_bad_row": p.on_bad_row, "layout": p.layout, "column_map": p.map,
        "id_column": p.id_column, "limit": p.limit, "side": p.side,
    }
    cache_dir = Path(p.cache_dir).expanduser() if p.cache_dir else default_cache_dir()
    outcome = submit(rate_args, cache_dir=cache_dir, detach=detach, poll_seconds=poll_seconds, api_key=p.api_key)
    if not outcome.done:
        raise PipelineDetached(outcome.job.job)
    return outcome.result


def _engine(p: Pipeline) -> Any:
    if p.engine is None or p.engine.kind == "local":
        return None
    if p.engine.kind != "ray":
        raise PipelineError(f"engine kind {p.engine.kind!r}: use local or ray")
    from winnow.engine.ray_engine import RayOptions

    return RayOptions(address=p.engine.address, actors=p.engine.actors,
                      in_flight_per_actor=p.engine.in_flight_per_actor)


def _keyed(message: str, section: str = "") -> str:
    """A message naming CLI flags, in the pipeline file's words: ``--top-frac`` is
    ``select.top_frac`` there (``section`` "select"), ``--max-retries`` is ``max_retries``."""
    import re

    prefix = f"{section}." if section else ""
    return re.sub(r"--([a-z][a-z-]*)", lambda m: prefix + m.group(1).replace("-", "_"), message)


def check_steps(p: Pipeline, judges: list[Any]) -> None:
    """The normalise and select steps' values, and the columns they read, checked before the
    first request: a typo in ``select.score_column`` was found after every judgment was paid for.

    A column is there if a judge of the pipeline writes it or the input already has it.
    """
    from winnow.selection import check_options
    from winnow.selectors.tags import parse_alpha, parse_min_support

    needed: dict[str, str] = {}  # column -> the key that names it
    if p.normalize is not None:
        n = p.normalize
        try:
            parse_alpha(n.alpha)
            if n.association:
                parse_min_support(n.min_support)
        except ValueError as exc:
            raise PipelineError(_keyed(str(exc), "normalize")) from None
        if not 0 < n.min_confidence <= 1:
            raise PipelineError(f"normalize.min_confidence must be in (0, 1], got {n.min_confidence}")
        needed[n.tags_column] = "normalize.tags_column"
    if p.select is not None:
        s = p.select
        options = {"budget": s.budget, "score_column": s.score_column, "min_score": s.min_score, "top_k": s.top_k,
                   "top_frac": s.top_frac, "tags_column": s.tags_column, "embedding_column": s.embedding_column,
                   "embed_model": s.embed_model, "threshold": s.threshold}
        try:
            check_options(s.method, options)
        except ValueError as exc:
            raise PipelineError(_keyed(str(exc), "select")) from None
        default_score = {"threshold": "alpagasus_score", "deita": "deita_score"}.get(s.method)
        if default_score is not None:
            needed.setdefault(s.score_column or default_score, "select.score_column")
        if s.method == "instag" or (s.method == "deita" and not s.embedding_column and not s.embed_model):
            needed.setdefault(s.tags_column, "select.tags_column")
        if s.method == "deita" and s.embedding_column:
            needed.setdefault(s.embedding_column, "select.embedding_column")
    written = {c for judge in judges for c in judge.output_columns()}
    names = {judge.name for judge in judges}
    if {"deita_complexity", "deita_quality"} <= names:
        written.add("deita_score")
    missing = {c: key for c, key in needed.items() if c not in written}
    if missing:
        _check_input_columns(p, missing, sorted(written))


def _check_input_columns(p: Pipeline, missing: dict[str, str], written: list[str]) -> None:
    """The columns no judge writes must be in the input (read once more, only in this case)."""
    from winnow.data import load
    from winnow.hints import did_you_mean

    dataset = load(p.input, layout=p.layout, column_map=p.map, id_column=p.id_column, on_bad_row="skip")
    present = {c for row in dataset.rows[:200] for c in row}
    for column, key in missing.items():
        if column in present:
            continue
        hint = did_you_mean(column, present | set(written))
        raise PipelineError(
            f"{key} '{column}': no judge of this pipeline writes it and {p.input} has no such column "
            f"(the judges write: {', '.join(written) or 'nothing'}){hint}. Nothing was sent.")


def preflight(p: Pipeline, *, batch: bool = False) -> tuple[list[Any], dict[str, Any], Any]:
    """Everything a run checks before its first request: the judges (each with a model), the
    steps and the columns they read, the engine settings, the engine, batch mode's one provider.
    ``winnow run --dry-run`` calls it too: a dry run that prices a file the run would refuse
    says "fine" about a run that cannot happen.  Returns the judges, their models, the settings."""
    from winnow.api import local_judge_options
    from winnow.engine.config import ModelConfig
    from winnow.judges.registry import get_judge

    if not p.judges:  # the model refuses it; a Pipeline built with model_construct would not
        raise PipelineError("judges must name at least one judge (e.g. judges: [alpagasus])")
    judges = []
    models: dict[str, Any] = {}
    for step in p.judges:
        model = step.model or p.model
        if model is None:
            raise PipelineError(f"judge '{step.name}' has no model: set 'model' at the top or on the judge")
        judge = get_judge(step.name, local_judge_options(model, step.options))
        models[judge.name] = ModelConfig(model=model, api_base=step.api_base or p.api_base, api_key=p.api_key,
                                         transport=p.transport)
        judges.append(judge)
    check_steps(p, judges)
    settings = engine_settings(p)
    _engine(p)
    if batch and any(step.api_base and step.api_base != p.api_base for step in p.judges):
        raise PipelineError("batch mode sends every judge to one provider: drop the per-judge api_base")
    return judges, models, settings


def engine_settings(p: Pipeline) -> Any:
    """The engine's settings from the pipeline's keys.  The engine's own refusals name its CLI
    flags (``--concurrency``); here they are the file's keys (``concurrency``)."""
    from winnow.engine.config import EngineSettings

    try:
        return EngineSettings(concurrency=p.concurrency, timeout=p.timeout, max_retries=p.max_retries,
                              max_cost=p.max_cost, rpm=p.rpm, tpm=p.tpm)
    except ValueError as exc:
        raise PipelineError(_keyed(str(exc))) from None


def run_pipeline(p: Pipeline, *, progress: bool = False, detach: bool = False,
                 poll_seconds: float = 30.0) -> PipelineResult:
    from winnow.api import preflight_output, rate
    from winnow.data import save
    from winnow.selection import select_rows

    judges, models, settings = preflight(p, batch=p.batch or detach)  # before anything is written
    out_dir = Path(p.outputs.dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = _suffix(p.input)
    judged_path = out_dir / (p.outputs.judged or f"judged{suffix}")
    subset_path = out_dir / (p.outputs.subset or f"subset{suffix}") if p.select else None
    judgments_path = out_dir / p.outputs.judgments
    for target in (judged_path, subset_path, judgments_path):
        if target is not None:
            preflight_output(target)

    if p.batch or detach:
        rated = _rate_in_batches(p, detach, poll_seconds)
    else:
        rated = rate(p.input, judges, p.model or "", judge_models=models, cache_dir=p.cache_dir,
                     on_bad_row=p.on_bad_row, layout=p.layout, column_map=p.map, id_column=p.id_column,
                     settings=settings, progress=progress, limit=p.limit, side=p.side, engine=_engine(p))
    rows = rated.rows
    notes: list[str] = []
    normalization = None
    if p.normalize is not None:
        from winnow.tagging import normalize

        n = p.normalize
        normalization = normalize(rows, tags_column=n.tags_column, alpha=n.alpha, rule=n.rule,
                                  embed_model=n.embed_model, api_base=p.api_base, eps=n.eps,
                                  association=n.association, min_support=n.min_support,
                                  min_confidence=n.min_confidence, cache_dir=p.cache_dir)
        rows = normalization.rows
        notes.append("tag vocabulary: " + " -> ".join(f"{s} {k}" for s, k in normalization.vocab_sizes))
    save(rows, judged_path, like=rated.dataset)
    selection = None
    if p.select is not None and subset_path is not None:
        s = p.select
        selection = select_rows(
            rows, s.method, samples=rated.samples, path=str(judged_path), budget=s.budget,
            score_column=s.score_column, min_score=s.min_score, top_k=s.top_k, top_frac=s.top_frac,
            tags_column=s.tags_column, embedding_column=s.embedding_column, embed_model=s.embed_model,
            api_base=p.api_base, threshold=s.threshold, keep_order=s.keep_order, cache_dir=p.cache_dir,
        )
        save(selection.rows, subset_path, like=rated.dataset)
        notes.extend(selection.notes)
    write_judgments_table(judgments_path, rated, rows, selection)
    report_path = None
    if p.outputs.report:
        report_path = out_dir / p.outputs.report
        if not _write_report(report_path, p, rated, rows, selection):
            report_path = None
    return PipelineResult(subset_path, judged_path, judgments_path, report_path,
                          len(selection.rows) if selection else 0, len(rows), rated, selection, normalization, notes)


def write_judgments_table(path: Path, rated: Any, rows: list[dict[str, Any]], selection: Any) -> None:
    """One row per sample, joinable by ``sample_id``: every judge column, cache keys, selection."""
    import orjson
    import pandas as pd

    rank = {idx: r for r, idx in enumerate(selection.indices, start=1)} if selection else {}
    judge_columns = list(dict.fromkeys([*rated.columns, "deita_score", "instag_tags_raw"]))
    records = []
    for i, (sample, row) in enumerate(zip(rated.samples, rows, strict=True)):
        record: dict[str, Any] = {"sample_id": sample.id, "row_index": sample.index}
        for column in judge_columns:
            if column in row:
                value = row[column]
                record[column] = orjson.dumps(value).decode() if isinstance(value, list | dict) else value
        for judge, keys in rated.keys.items():
            record[f"{judge}_keys"] = ",".join(keys[i])
        record["selected"] = i in rank
        record["selection_rank"] = rank.get(i)
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    tmp = path.with_name(path.name + ".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def _write_report(path: Path, p: Pipeline, rated: Any, rows: list[dict[str, Any]], selection: Any) -> bool:
    try:
        from winnow.audit.report import write_report
    except ImportError:
        return False
    from winnow.cache import JudgmentCache
    from winnow.types import Sample

    settings = p.model_dump(exclude={"api_key"})
    # the report's trust section reads each sample's judgments from its row: the judged one
    judged = [Sample(s.id, s.turns, row, s.index, s.alpaca) for s, row in zip(rated.samples, rows, strict=True)]
    with JudgmentCache(p.cache_dir) as cache:
        write_report(rows, selection.rows if selection else None, judges=rated.judges, settings=settings,
                     cache=cache, output=path, sample_ids=[s.id for s in rated.samples], samples=judged,
                     cache_keys=[k for per_judge in rated.keys.values() for keys in per_judge for k in keys])
    return True
