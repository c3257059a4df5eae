"""Counters of one run; read by the progress display and the summary, never per-row I/O."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class RunStats:
    rows_total: int = 0
    rows_done: int = 0
    rows_failed: int = 0
    cache_hits: int = 0
    old_parser_hits: int = 0  # cache hits whose record an older parser read (winnow reparse)
    requests: int = 0  # HTTP attempts, retries included
    calls: int = 0  # judgments obtained from a model (cache misses answered)
    retries: int = 0
    reasks: int = 0
    request_failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    started: float = field(default_factory=time.monotonic)
    failure_reasons: Counter[str] = field(default_factory=Counter)
    transports: Counter[str] = field(default_factory=Counter)
    concurrency_limit: int = 0
    stopped: str | None = None  # why dispatch stopped early (max cost, interrupt)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def hit_rate(self) -> float:
        lookups = self.cache_hits + self.calls
        return self.cache_hits / lookups if lookups else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "rows_total": self.rows_total,
            "rows_done": self.rows_done,
            "rows_failed": self.rows_failed,
            "cache_hits": self.cache_hits,
            "old_parser_hits": self.old_parser_hits,
            "calls": self.calls,
            "requests": self.requests,
            "retries": self.retries,
            "reasks": self.reasks,
            "request_failures": self.request_failures,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": round(self.cost, 6),
            "hit_rate": round(self.hit_rate, 4),
            "elapsed_s": round(self.elapsed, 3),
            "failure_reasons": dict(self.failure_reasons),
            "transports": dict(self.transports),
            "stopped": self.stopped,
        }
