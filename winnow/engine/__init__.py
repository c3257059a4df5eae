"""Talks to models: transports, retries, flow control, the judging runner.

The engine depends on judges and the cache; nothing below it depends on the engine.
"""

from winnow.engine.config import EngineSettings, JudgeRun, ModelConfig
from winnow.engine.runner import Engine, FatalRunError, Interrupted
from winnow.engine.stats import RunStats

__all__ = ["Engine", "EngineSettings", "FatalRunError", "Interrupted", "JudgeRun", "ModelConfig", "RunStats"]
