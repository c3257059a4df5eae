"""Settings of a judging run: which model a judge talks to, and how hard to push."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from winnow.judges.base import Judge


@dataclass(slots=True)
class ModelConfig:
    """Where a judge's requests go.

    ``key_api_base`` is what the cache key records instead of ``api_base`` when the address
    is incidental (the bundled local server listens on a fresh port every run, yet it is the
    same judge model), so judgments stay hits across runs.
    """

    model: str
    api_base: str | None = None
    api_key: str | None = field(default=None, repr=False)
    transport: str = "auto"  # auto | fast | litellm
    structured: bool | None = None  # None: judge default
    key_api_base: str | None = None
    # several endpoints serving the model (``--api-base`` given more than once): requests are
    # spread over them (winnow.engine.endpoints); ``api_base`` is the first
    api_bases: tuple[str, ...] = ()
    # Why the server behind this model is gone (None while it is up), for servers winnow runs
    # itself: the engine polls it and stops the run at once when it returns an error.
    health: Callable[[], BaseException | None] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        # checked here, not where a transport is picked: a fully cached run picks none, and a
        # misspelt --transport would pass unnoticed until the first miss of a later run
        if self.transport not in ("auto", "fast", "litellm"):
            raise ValueError(f"unknown transport '{self.transport}': use auto, fast or litellm")

    @property
    def cache_api_base(self) -> str | None:
        return self.key_api_base if self.key_api_base is not None else self.api_base


@dataclass(slots=True)
class JudgeRun:
    judge: Judge
    model: ModelConfig


@dataclass(slots=True)
class EngineSettings:
    concurrency: int = 32
    timeout: float = 120.0
    max_retries: int = 6
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    reasks: int = 1
    retry_failed: bool = False
    max_cost: float | None = None
    offline: bool = False  # answer only from the cache; a miss leaves the row unjudged, nothing is sent
    rpm: float | None = None
    tpm: float | None = None
    progress: bool = True
    grace_seconds: float = 5.0

    def __post_init__(self) -> None:
        """Values that would make a run hang, spin or stop at once, named by their CLI option."""
        problems = [f"--{name.replace('_', '-')} {problem}" for name in CHECKED_SETTINGS
                    if (problem := setting_problem(name, getattr(self, name))) is not None]
        if problems:
            raise ValueError("; ".join(problems))


CHECKED_SETTINGS = ("concurrency", "timeout", "max_retries", "max_cost", "rpm", "tpm")


def setting_problem(name: str, value: float | None) -> str | None:
    """What is wrong with engine setting ``name`` (one of ``CHECKED_SETTINGS``), in words that
    follow its name, or None.  One set of rules for ``EngineSettings`` (which names CLI flags)
    and a pipeline file (which names its keys)."""
    if value is None:
        return None
    if name == "concurrency" and value < 1:
        return f"must be at least 1 (got {value})"
    if name == "timeout" and not value > 0:
        return f"must be more than 0 seconds (got {value:g})"
    if name == "max_retries" and value < 0:
        return f"must be 0 or more (got {value})"
    if name == "max_cost" and value < 0:
        return f"must be 0 or more dollars (got {value:g})"
    if name in ("rpm", "tpm") and not value > 0:
        return f"must be more than 0 (got {value:g})"
    return None
