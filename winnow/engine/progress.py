"""A live progress line redrawn a few times a second from the run's counters.

The display reads ``RunStats`` on rich's refresh timer; judging never calls into rich per
row (issue: progress must not be on the per-judgment path).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from winnow.engine.stats import RunStats


class _Line:
    def __init__(self, stats: RunStats) -> None:
        self.stats = stats

    def __rich__(self) -> Any:
        from rich.text import Text

        s = self.stats
        done, total = s.rows_done, max(s.rows_total, 1)
        rate = s.rows_done / s.elapsed if s.elapsed > 0 else 0.0
        eta = (s.rows_total - s.rows_done) / rate if rate > 0 else 0.0
        width = 24
        filled = int(width * done / total)
        bar = "█" * filled + "░" * (width - filled)
        return Text(
            f"{bar} {done}/{s.rows_total} rows · {s.cache_hits} cached · {s.rows_failed} failed · "
            f"${s.cost:.4f} · {rate:.0f}/s · ETA {eta:.0f}s · in flight ≤{s.concurrency_limit}"
        )


@contextmanager
def live_progress(stats: RunStats, enabled: bool) -> Iterator[None]:
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with Live(_Line(stats), console=console, refresh_per_second=4, transient=False):
        yield
