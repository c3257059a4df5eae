"""The Python API.  The CLI is a thin shell over these functions, with the same names.

``winnow rate P --judge alpagasus --model M -o O`` is one call of ``rate(P, ["alpagasus"],
"M", output="O")`` (architecture.md rule 6).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from winnow.engine.config import EngineSettings, JudgeRun, ModelConfig
from winnow.engine.stats import RunStats
from winnow.gcpause import gc_paused
from winnow.hints import did_you_mean
from winnow.judges.base import Judge, response_need
from winnow.types import BadRow

__all__ = ["PreflightError", "RateResult", "open_cache", "preflight_output", "rate"]

MIN_FREE_BYTES = 50 * 2**20


class PreflightError(RuntimeError):
    """Something that would fail after money was spent, caught before the first request."""


@dataclass
class RateResult:
    rows: list[dict[str, Any]]
    output: Path | None
    stats: RunStats
    judges: list[str]
    bad_rows: list[BadRow] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    samples: list[Any] = field(default_factory=list)
    keys: dict[str, list[list[str]]] = field(default_factory=dict)  # judge -> per-row cache keys
    dataset: Any = None
    evol_labels: Path | None = None  # DEITA --mode evol: the scorer-training table (judges/evol_labels.py)
    notes: list[str] = field(default_factory=list)  # said in the summary (input columns replaced, ...)

    @property
    def skipped(self) -> int:
        return len(self.bad_rows)


def preflight_output(path: Path) -> None:
    """Refuse an output we could not write, before any request is sent."""
    from winnow.data.writers import check_output_suffix

    check_output_suffix(path)  # x.xlsx / x.jsonl.gz: no format to write them in
    parent = path.resolve().parent
    if not parent.is_dir():
        raise PreflightError(f"cannot write {path}: folder {parent} does not exist")
    if path.exists() and (path.is_dir() or not os.access(path, os.W_OK)):
        raise PreflightError(f"cannot write {path}: it is a folder or read-only")
    if not os.access(parent, os.W_OK):
        raise PreflightError(f"cannot write {path}: folder {parent} is read-only")
    if shutil.disk_usage(parent).free < MIN_FREE_BYTES:
        raise PreflightError(f"cannot write {path}: less than 50 MiB free on its disk")


def open_cache(cache_dir: str | Path | None, use_cache: bool = True) -> Any:
    from winnow.cache import JudgmentCache, NullCache

    if not use_cache:
        return NullCache()
    cache = JudgmentCache(cache_dir)
    if shutil.disk_usage(cache.directory).free < MIN_FREE_BYTES:
        cache.close()
        raise PreflightError(f"cache directory {cache.directory}: less than 50 MiB free on its disk")
    return cache


def local_judge_options(model: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Judge options for ``model``: local models get JSON-schema constrained output unless the
    user chose otherwise (llama.cpp enforces the schema, so ``ok`` becomes the norm)."""
    from winnow.local.files import is_local_model

    out = dict(options)
    if is_local_model(model):
        out.setdefault("structured", True)
    return out


def make_judges(
    judges: Sequence[str | Judge], model: str, judge_options: Mapping[str, Any] | None, structured: bool | None
) -> list[Judge]:
    """The judge objects ``rate`` (and its dry run, ``audit.costs.estimate``) runs: names looked
    up with the options, local models defaulting to structured output."""
    from winnow.judges.registry import check_options, get_judge

    names = [spec if isinstance(spec, str) else spec.name for spec in judges]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"judge {', '.join(twice)} named twice: each judge runs once per row")
    options = dict(judge_options or {})
    check_options(judges, options)
    if structured is not None:
        options.setdefault("structured", structured)
    options = local_judge_options(model, options)
    built = [spec if isinstance(spec, Judge) else get_judge(spec, options) for spec in judges]
    # two judge folders (or paths) whose judge.yaml give the same `name:` would write the same columns
    built_names = [j.name for j in built]
    twice = sorted({n for n in built_names if built_names.count(n) > 1})
    if twice:
        sources = [spec for spec, n in zip(names, built_names, strict=True) if n in twice]
        raise ValueError(f"judge {', '.join(twice)} named twice ({', '.join(sources)}): each judge's columns are "
                         "<name>_..., so one would overwrite the other; give each judge its own name")
    return built


def check_judge_models(judges: Sequence[Judge], judge_models: Mapping[str, Any] | None) -> None:
    """Refuse a ``--judge-model`` entry that names no judge of the run: a typo would silently judge
    with the run's model, and the cache would then hold judgments of a model nobody asked for."""
    names = sorted({judge.name for judge in judges})
    for key in judge_models or {}:
        if key.replace("-", "_") not in names:
            hint = did_you_mean(key.replace("-", "_"), names)
            raise ValueError(f"--judge-model {key}=...: no judge of this run is called '{key}' "
                             f"(judges: {', '.join(names)}){hint}")


def check_max_cost(settings: EngineSettings, models: Sequence[str]) -> None:
    """Refuse a ``--max-cost`` that cannot be enforced: a model with no listed price costs $0 a
    call as far as winnow can tell, so the cap would silently never stop the run."""
    if settings.max_cost is None:
        return
    from winnow.engine.fast_transport import token_prices

    unpriced = sorted({m for m in models if token_prices(m) == (0.0, 0.0)})
    if unpriced:
        raise PreflightError(
            f"--max-cost {settings.max_cost:g} cannot be enforced: no listed price for {', '.join(unpriced)} "
            "(litellm's price table), so every call counts as $0. Drop --max-cost, or judge with a priced model")


def model_for(judge: Judge, model: str, judge_models: Mapping[str, str | ModelConfig] | None) -> str | ModelConfig:
    """The model that judges ``judge``: its ``--judge-model`` entry (``deita-quality`` and
    ``deita_quality`` both name it), else the run's model."""
    per_judge = {k.replace("-", "_"): v for k, v in (judge_models or {}).items()}
    return per_judge.get(judge.name) or model


def _local_identity(cfg: ModelConfig) -> ModelConfig | None:
    from winnow.local.files import is_local_model

    if not is_local_model(cfg.model):
        return None
    from winnow.local.model import identity_before_start

    return identity_before_start(cfg)


@contextmanager
def resolve_model(cfg: ModelConfig) -> Iterator[ModelConfig]:
    """Turn ``local`` / ``local/PATH.gguf`` into a running llama.cpp server for the run."""
    from winnow.local.files import is_local_model

    if is_local_model(cfg.model):
        from winnow.local import local_model

        with local_model(cfg) as resolved:
            yield resolved
        return
    yield cfg


PAIRED_LAYOUTS = ("preference", "hh")


def _rejected_sides(
    dataset: Any, data: str | Path, layout: str | None, column_map: dict[str, str] | None, id_column: str | None,
    policy: Literal["fail", "skip"], need_response: bool | str = False,
) -> list[tuple[Any, Any]]:
    """``--side both``: each chosen sample with the same row's rejected one.  A row whose either
    side is bad is left out of both (and reported once)."""
    from winnow.data import load

    other = load(data, layout=dataset.layout, column_map=column_map, id_column=id_column, on_bad_row=policy,
                 side="rejected", need_response=need_response)
    by_index = {s.index: s for s in other.samples}
    known = {(b.index, b.field) for b in dataset.bad_rows}
    dataset.bad_rows.extend(b for b in other.bad_rows if (b.index, b.field) not in known)
    dataset.samples[:] = [s for s in dataset.samples if s.index in by_index]
    return [(s, by_index[s.index]) for s in dataset.samples]


def model_config(model: str, api_base: str | Sequence[str] | None, api_key: str | None,
                 transport: str = "auto") -> ModelConfig:
    """Where a judge's requests go: one ``api_base``, or several endpoints of one model, spread
    by load, whose cache identity is the model (``winnow.engine.endpoints``)."""
    if api_base is None or isinstance(api_base, str):
        return ModelConfig(model=model, api_base=api_base, api_key=api_key, transport=transport)
    urls = tuple(dict.fromkeys(u.rstrip("/") for u in api_base))
    if len(urls) == 1:
        return ModelConfig(model=model, api_base=urls[0], api_key=api_key, transport=transport)
    from winnow.engine.endpoints import POOL_IDENTITY
    from winnow.local.files import is_local_model

    if is_local_model(model):
        raise ValueError("--model local serves one local server: give at most one --api-base")
    return ModelConfig(model=model, api_base=urls[0], api_key=api_key, transport=transport,
                       key_api_base=POOL_IDENTITY, api_bases=urls)


def _replaced_columns(samples: Sequence[Any], columns: Sequence[str]) -> list[str]:
    """A note for each judge column the input already had: its values are replaced in the
    output (re-rating a judged file does this on purpose; a column of one's own with a judge's
    name would be lost without a word)."""
    wanted = set(columns)
    counts: dict[str, int] = {}
    for sample in samples:
        for column in wanted.intersection(sample.row):
            counts[column] = counts.get(column, 0) + 1
    if not counts:
        return []
    listed = ", ".join(f"{c} ({n} rows)" for c, n in sorted(counts.items()))
    return [f"the input already had {listed}: replaced by this run's judgments in the output"]


def check_inputs(judges: Sequence[Judge], samples: Sequence[Any], name: str) -> None:
    """Refuse, before any request, a judge that needs responses on rows that have none."""
    lacking = [s for s in samples if not s.has_response]
    if not lacking:
        return
    needy = [j.name for j in judges if j.needs_response]
    if not needy:
        return
    from winnow.judges.registry import BUILTIN, judge_class

    prompt_only = sorted(name for name in BUILTIN if not judge_class(name).needs_response)
    first = lacking[0].index + 1
    raise PreflightError(
        f"{', '.join(needy)} need{'' if len(needy) > 1 else 's'} a response to judge (the user turns and the "
        "answer), but "
        f"{len(lacking)} of {len(samples)} rows of {name} have none (first: row {first}); nothing was sent. "
        f"Judges that read the user turns alone: {', '.join(prompt_only)}"
    )


def rate(
    data: str | Path,
    judges: Sequence[str | Judge],
    model: str,
    *,
    output: str | Path | None = None,
    api_base: str | Sequence[str] | None = None,
    api_key: str | None = None,
    judge_models: Mapping[str, str | ModelConfig] | None = None,
    judge_options: dict[str, Any] | None = None,
    transport: str = "auto",
    structured: bool | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    on_bad_row: str = "fail",
    layout: str | None = None,
    column_map: dict[str, str] | None = None,
    id_column: str | None = None,
    settings: EngineSettings | None = None,
    progress: bool = False,
    limit: int | None = None,
    side: str = "chosen",
    engine: Any = None,
    on_stats: Callable[[RunStats], None] | None = None,
    log_as: str = "rate",
) -> RateResult:
    """Rate every row of ``data`` with every judge; write the annotated rows to ``output``.

    Rows keep all their fields and gain ``<judge>_<field>`` columns.  Raises
    ``winnow.data.DataError`` for bad rows (unless ``on_bad_row='skip'``),
    ``PreflightError`` for an unusable output or cache, ``FatalRunError`` when the model
    rejects requests, ``Interrupted`` on Ctrl-C (after caching everything finished).
    ``engine``: None (this process), "ray" or a ``winnow.engine.ray_engine.RayOptions``: the
    calls are answered by actors on a Ray cluster, into this cache (docs/ray.md).
    ``log_as``: the command the cache's run log names (``compare`` rates through here).
    ``on_stats``: called with the run's stats before they are logged; the batch driver counts
    the judgments its job bought (read back here as cache hits) as this run's.
    """
    from winnow.data import load, save
    from winnow.engine.progress import live_progress
    from winnow.engine.runner import Engine

    if not judges:
        raise ValueError("name at least one judge (e.g. --judge alpagasus)")
    if on_bad_row not in ("fail", "skip"):
        raise ValueError(f"on_bad_row must be 'fail' or 'skip', got {on_bad_row!r}")
    policy: Literal["fail", "skip"] = "skip" if on_bad_row == "skip" else "fail"
    if side not in ("chosen", "rejected", "both"):
        raise ValueError(f"side must be chosen, rejected or both, got {side!r}")
    judge_objects = make_judges(judges, model, judge_options, structured)
    # rows with an empty response are bad rows for judges that read it (winnow/data/responses.py)
    need_response = response_need(judge_objects)
    dataset = load(data, layout=layout, column_map=column_map, id_column=id_column, on_bad_row=policy,
                   side="rejected" if side == "rejected" else "chosen", need_response=need_response)
    if side != "chosen" and dataset.layout not in PAIRED_LAYOUTS:
        raise ValueError(f"--side {side}: {data} is {dataset.layout} data; sides belong to preference and hh rows")
    if limit is not None:
        del dataset.samples[limit:]  # a trial on the first rows; the rest are not read back out
    pairs = (_rejected_sides(dataset, data, layout, column_map, id_column, policy, need_response)
             if side == "both" else None)
    check_judge_models(judge_objects, judge_models)
    settings = settings or EngineSettings()
    check_max_cost(settings, [str(getattr(m, "model", m)) for m in (model_for(j, model, judge_models)
                                                                     for j in judge_objects)])
    check_inputs(judge_objects, dataset.samples, str(data))
    out_path = Path(output) if output is not None else None
    if out_path is not None:
        from winnow.data.writers import output_format

        preflight_output(out_path)
        output_format(out_path, like_format=dataset.format)  # e.g. `-o out` for an HF folder: before judging
    stats = RunStats()
    judged = dataset.samples + [rejected for _, rejected in pairs] if pairs is not None else dataset.samples
    with ExitStack() as stack:
        cache = open_cache(cache_dir, use_cache)
        stack.callback(cache.close)
        runs = []
        later: list[tuple[JudgeRun, ModelConfig]] = []  # local servers, started on the first miss
        for judge in judge_objects:
            chosen = model_for(judge, model, judge_models)
            if isinstance(chosen, ModelConfig):
                cfg = chosen
            else:
                cfg = model_config(chosen, api_base, api_key, transport)
            waiting = _local_identity(cfg)
            if waiting is not None:
                runs.append(JudgeRun(judge, waiting))
                later.append((runs[-1], cfg))
            else:
                runs.append(JudgeRun(judge, stack.enter_context(resolve_model(cfg))))

        def start_servers() -> None:
            for run, cfg in later:
                resolved = stack.enter_context(resolve_model(cfg))
                if (resolved.model, resolved.cache_api_base) != (run.model.model, run.model.cache_api_base):
                    from winnow.local.files import LocalModelError

                    raise LocalModelError(f"the local server for {cfg.model} announced {resolved.model!r}, "
                                          f"expected {run.model.model!r}: its judgments would not match the cache")
                run.model = resolved

        judging = Engine(cache, settings, stats)
        answered = 0
        if engine is not None and engine != "local":
            from dataclasses import replace as _replace

            from winnow.engine.ray_engine import RayOptions, judge_on_ray

            if later:
                raise ValueError("--engine ray: serve the local judge (winnow serve-local) and pass --api-base")
            answered = judge_on_ray(judging, judged, runs,
                                    engine if isinstance(engine, RayOptions) else RayOptions(), api_key=api_key)
            # every answer is cached now: the rows come from the cache, nothing more is sent
            judging = Engine(cache, _replace(settings, offline=True), stats)
            stats.transports["ray"] += answered
        try:
            with live_progress(stats, progress):
                verdicts = judging.run(judged, runs, before_online=start_servers if later else None)
            if answered:  # the offline pass read Ray's answers as hits: they were this run's calls
                stats.cache_hits = max(0, stats.cache_hits - answered)
                stats.calls += answered
            if on_stats is not None:
                on_stats(stats)
        finally:
            if use_cache:
                from winnow.cache.runs import append_run

                append_run(cache.directory, stats.as_dict(), command=log_as, data=str(data),
                           judges=[j.name for j in judge_objects], models=sorted({r.model.model for r in runs}),
                           output=str(out_path) if out_path else None)
    rows: list[dict[str, Any]] = []
    columns: list[str] = []
    for judge in judge_objects:
        columns.extend(judge.output_columns())
    n = len(dataset.samples)
    with gc_paused():  # one new dict per row, all kept: no cycles to collect (winnow/gcpause.py)
        for i, sample in enumerate(dataset.samples):
            row = dict(sample.row)
            for j, judge in enumerate(judge_objects):
                if pairs is None:
                    judge.flatten_into(row, verdicts[j][i])
                else:  # --side both: each side's columns under its own prefix
                    for prefix, verdict in (("chosen_", verdicts[j][i]), ("rejected_", verdicts[j][n + i])):
                        row.update({prefix + k: v for k, v in judge.flatten(verdict).items()})
            rows.append(row)
    if pairs is not None:
        columns = [prefix + c for c in columns for prefix in ("chosen_", "rejected_")]
    notes = _replaced_columns(dataset.samples, columns)
    names = [j.name for j in judge_objects]
    if "deita_complexity" in names and "deita_quality" in names:
        from winnow.judges.deita import combine_deita

        for prefix in ("",) if pairs is None else ("chosen_", "rejected_"):
            rows = combine_deita(rows, prefix)
            columns.append(f"{prefix}deita_score")
    if out_path is not None:
        save(rows, out_path, like=dataset)
    labels_file = _write_evol_labels(judge_objects, runs, judged, verdicts, out_path)
    keys = {j.name: [v.keys for v in verdicts[k]] for k, j in enumerate(judge_objects)}
    # samples and keys: one per judged sample (with --side both, the rejected sides follow the rows)
    return RateResult(rows, out_path, stats, names, list(dataset.bad_rows), columns,
                      list(judged), keys, dataset, labels_file, notes)


def _write_evol_labels(
    judges: Sequence[Judge], runs: Sequence[JudgeRun], samples: Sequence[Any], verdicts: Sequence[Sequence[Any]],
    out_path: Path | None,
) -> Path | None:
    """DEITA judges in evol mode: their (variant, score) labels beside the output, if any."""
    evol = [n for n, judge in enumerate(judges) if getattr(judge, "mode", None) == "evol"]
    if not evol or out_path is None:
        return None
    from winnow.judges.evol_labels import evol_label_rows, labels_path, write_evol_labels

    rows = []
    for n in evol:
        rows.extend(evol_label_rows(judges[n].name, runs[n].model.model, samples, verdicts[n]))
    return write_evol_labels(rows, labels_path(out_path))
