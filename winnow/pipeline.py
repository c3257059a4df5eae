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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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


class EngineStep(_Strict):
    kind: str = "local"  # local or ray
    address: str | None = None  # a Ray cluster to join (default: a local Ray on loopback for the run)
    actors: int = Field(default=2, ge=1)
    in_flight_per_actor: int = Field(default=64, ge=1)


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

    @classmethod
    def from_yaml(cls, path: str | Path) -> Pipeline:
        """Load a pipeline file; relative paths in it are relative to the file's folder."""
        import yaml

        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PipelineError(f"{path}: cannot read: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise PipelineError(f"{path}{where}: not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise PipelineError(f"{path}: expected a mapping of settings at the top level")
        try:
            pipeline = cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
            )
            raise PipelineError(f"{path}: {problems}") from None
        return pipeline.relative_to(path.resolve().parent)

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
