"""winnow: rate, tag and select instruction-tuning data with LLM judges.

Public names are resolved lazily so that ``import winnow`` (and the CLI's start-up) pulls
in neither litellm nor pandas.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["EngineSettings", "Judge", "JudgmentCache", "Pipeline", "SingleCallJudge", "__version__", "load", "rate",
           "save", "select"]

_LAZY = {
    "rate": ("winnow.api", "rate"),
    "select": ("winnow.selection", "select"),
    "load": ("winnow.data", "load"),
    "save": ("winnow.data", "save"),
    "Judge": ("winnow.judges.base", "Judge"),
    "SingleCallJudge": ("winnow.judges.base", "SingleCallJudge"),
    "JudgmentCache": ("winnow.cache", "JudgmentCache"),
    "Pipeline": ("winnow.pipeline", "Pipeline"),
    "EngineSettings": ("winnow.engine.config", "EngineSettings"),  # rate(settings=...): concurrency, rpm...
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'winnow' has no attribute {name!r}")
