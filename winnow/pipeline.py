"""A whole rate -> tag -> score -> select run, declared in one YAML file or built in Python.

The file is validated strictly (unknown keys are errors, naming the key) because a typo in
a silently ignored option is the classic way to spend money on the wrong run
(alpaca_eval's users were bitten by exactly that).  Every judgment goes through the cache,
so re-running a pipeline sends only what is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = ["JudgeStep", "NormalizeStep", "Outputs", "Pipeline", "PipelineError", "PipelineResult", "SelectStep"]


class PipelineError(ValueError):
    """A pipeline file that cannot run; names the file and the offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JudgeStep(_Strict):
    name: str
    model: str | None = None
    api_base: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_options(self) -> JudgeStep:
        """A step's options belong to its judge alone: a name it does not take is a typo."""
        from winnow.judges.registry import check_options

        if self.options:
            check_options([self.name], self.options, flag="option")
        return self


def _one_of(value: str, choices: tuple[str, ...]) -> str:
    """A closed set of words: a misspelt one would otherwise surface only mid-run (or never).
    The message leaves the key out: pydantic's error location names it (``select.method: ...``)."""
    if value not in choices:
        raise ValueError(f"must be {', '.join(choices[:-1])} or {choices[-1]} (got {value!r})")
    return value


class EngineStep(_Strict):
    kind: str = "local"  # local or ray
    address: str | None = None  # a Ray cluster to join (default: a local Ray on loopback for the run)
    actors: int = Field(default=2, ge=1)
    in_flight_per_actor: int = Field(default=64, ge=1)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        return _one_of(value, ("local", "ray"))


class NormalizeStep(_Strict):
    tags_column: str = "instag_tags"
    alpha: int | str | None = "auto"
    rule: bool = True
    embed_model: str | None = None
    eps: float = 0.05
    association: bool = True
    min_support: int | str = "auto"
    min_confidence: float = 0.99


class SelectStep(_Strict):
    method: str = "threshold"
    budget: int | None = None
    score_column: str | None = None
    min_score: float | None = None
    top_k: int | None = None
    top_frac: float | None = None
    tags_column: str = "instag_tags"
    embedding_column: str | None = None
    embed_model: str | None = None
    threshold: float = 0.9
    keep_order: bool = False

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        return _one_of(value, ("threshold", "instag", "deita"))


class Outputs(_Strict):
    dir: str = "winnow-runs/run"
    subset: str | None = None  # default: subset.<input suffix>
    judged: str | None = None  # default: judged.<input suffix>
    judgments: str = "judgments.parquet"
    report: str | None = "report.html"


class Pipeline(_Strict):
    """``Pipeline(input=..., judges=[...], select=SelectStep(...)).run()``."""

    input: str
    model: str | None = None
    api_base: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    transport: str = "auto"
    concurrency: int = 32
    timeout: float = 120.0
    max_retries: int = 6
    max_cost: float | None = None
    rpm: float | None = None
    tpm: float | None = None
    cache_dir: str | None = None
    layout: str | None = None
    map: dict[str, str] | None = None
    side: str = "chosen"  # preference / HH rows: chosen or rejected (both is for `rate`)
    batch: bool = False  # judge through the provider's batch API (winnow.batch), half the price
    engine: EngineStep | None = None  # None: this process; {kind: ray, address, actors, in_flight_per_actor}
    id_column: str | None = None
    on_bad_row: str = "fail"
    limit: int | None = Field(default=None, ge=1)  # judge only the first N rows (a trial run)
    judges: list[JudgeStep]
    normalize: NormalizeStep | None = None
    select: SelectStep | None = None
    outputs: Outputs = Field(default_factory=Outputs)

    @field_validator("side")
    @classmethod
    def _one_side(cls, value: str) -> str:
        if value not in ("chosen", "rejected"):
            raise ValueError(f"side must be chosen or rejected, got {value!r} (a pipeline selects one side's rows; "
                             "`winnow rate --side both` judges both)")
        return value

    @field_validator("judges", mode="before")
    @classmethod
    def _judge_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("judges")
    @classmethod
    def _some_judge(cls, value: list[JudgeStep]) -> list[JudgeStep]:
        """A pipeline without a judge would write unjudged rows and call it a run."""
        if not value:
            raise ValueError("must name at least one judge (e.g. judges: [alpagasus])")
        return value

    @field_validator("transport")
    @classmethod
    def _known_transport(cls, value: str) -> str:
        return _one_of(value, ("auto", "fast", "litellm"))

    @field_validator("on_bad_row")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        return _one_of(value, ("fail", "skip"))

    @field_validator("concurrency", "timeout", "max_retries", "rpm", "tpm")
    @classmethod
    def _engine_setting(cls, value: float | None, info: ValidationInfo) -> float | None:
        """The engine's own rules (``setting_problem``); pydantic's error location names the
        file's key, where ``EngineSettings`` would name a CLI flag."""
        from winnow.engine.config import setting_problem

        problem = setting_problem(str(info.field_name), value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("max_cost")
    @classmethod
    def _positive_cost(cls, value: float | None) -> float | None:
        """As ``rate --max-cost``: at 0 (or below) nothing would ever be sent."""
        if value is not None and not value > 0:
            raise ValueError(f"must be more than 0 dollars (got {value:g}): at 0 nothing would ever be sent")
        return value

    @classmethod
    def from_yaml(cls, path: str | Path) -> Pipeline:
        """Load a pipeline file; relative paths in it are relative to the file's folder."""
        import yaml

        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PipelineError(f"{path}: cannot read: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:  # a binary file, or another encoding: name the file, not the codec
            raise PipelineError(f"{path}: not a text (UTF-8) file: byte {exc.start} is 0x{exc.object[exc.start]:02x}; "
                                "a pipeline file is YAML text") from None
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PipelineError(_yaml_problem(path, text, exc)) from None
        if not isinstance(raw, dict):
            raise PipelineError(f"{path}: expected a mapping of settings at the top level")
        try:
            pipeline = cls.model_validate(raw)
        except ValidationError as exc:
            raise PipelineError(f"{path}: {problems(exc)}") from None
        return pipeline.relative_to(path.resolve().parent)

    def updated(self, update: dict[str, Any], source: str = "the command line") -> Pipeline:
        """This pipeline with ``update`` applied and validated again (``model_copy`` checks
        nothing, so ``--transport fsat`` would otherwise pass where the file's key is refused)."""
        data = self.model_copy(update=update).model_dump()  # nested steps as dicts: checked again too
        try:
            return type(self).model_validate(data)
        except ValidationError as exc:
            raise PipelineError(f"{source}: {problems(exc)}") from None

    def relative_to(self, base: Path) -> Pipeline:
        def fix(value: str | None) -> str | None:
            if value is None or value == "local" or value.startswith("local/"):
                return value
            value = os.path.expanduser(value)  # ~/data.jsonl is the home folder's, not the file's
            return value if Path(value).is_absolute() else os.path.normpath(base / value)

        update: dict[str, Any] = {"input": fix(self.input), "outputs": self.outputs.model_copy(
            update={"dir": fix(self.outputs.dir)})}
        if self.cache_dir:
            update["cache_dir"] = fix(self.cache_dir)
        judges = []
        for step in self.judges:
            if not _is_builtin(step.name) and Path(base / step.name).exists():
                step = step.model_copy(update={"name": str(base / step.name)})
            judges.append(step)
        update["judges"] = judges
        return self.model_copy(update=update)

    def run(self, *, progress: bool = False, detach: bool = False, poll_seconds: float = 30.0) -> PipelineResult:
        """Carry the pipeline out.  With ``batch`` (or ``detach``) the judging goes through the
        provider's batch API; ``detach`` raises ``PipelineDetached`` with the job id once submitted."""
        from winnow.pipeline_run import run_pipeline

        return run_pipeline(self, progress=progress, detach=detach, poll_seconds=poll_seconds)


def problems(exc: ValidationError) -> str:
    """Pydantic's errors as ``key: message``, without its "Value error," prefix (our validators'
    messages name the key and what it takes already)."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
                     for err in exc.errors())


def _yaml_problem(path: Path, text: str, exc: Exception) -> str:
    """The YAML error at the line that is wrong.  PyYAML marks an unclosed ``[`` or quote at the
    end of the file (the line after the last), where nothing is to be fixed; its context mark
    points at the bracket that was never closed, so that line is named instead."""
    mark = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context_mark", None)
    if mark is not None and context is not None and not text[mark.index:].strip():
        snippet = context.get_snippet() or ""
        return (f"{path} line {context.line + 1}: not valid YAML: {getattr(exc, 'context', '')} started at line "
                f"{context.line + 1}, column {context.column + 1}, the file ended first: "
                f"{getattr(exc, 'problem', '')}" + (f"\n{snippet}" if snippet else ""))
    where = f" line {mark.line + 1}" if mark is not None else ""
    detail = str(exc).replace('"<unicode string>"', f'"{path}"')
    return f"{path}{where}: not valid YAML: {detail}"


def _is_builtin(name: str) -> bool:
    from winnow.judges.registry import BUILTIN

    return name in BUILTIN


@dataclass
class PipelineResult:
    subset: Path | None
    judged: Path
    judgments: Path
    report: Path | None
    selected: int
    pool: int
    rate: Any
    selection: Any = None
    normalization: Any = None
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"pool {self.pool} rows, selected {self.selected}"]
        lines.append(f"  judged rows:     {self.judged}")
        lines.append(f"  judgments table: {self.judgments}")
        if self.subset is not None:
            lines.append(f"  subset:          {self.subset}")
        if self.report is not None:
            lines.append(f"  report:          {self.report}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)
