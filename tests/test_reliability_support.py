"""Helpers shared by the reliability tests (tests/test_reliability_*.py); holds no tests itself.

Why a module of its own: every reliability test drives the real ``winnow rate`` CLI as a
subprocess in its own process group against a loopback fake server, and reports figures
(kills survived, faults injected, requests wasted, records lost) that RELIABILITY.md quotes.
Figures go to ``.pytest_cache/reliability/figures.json`` (git-ignored) and to stdout (``-s``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ALPACA_3K = ROOT / "tests" / "data" / "alpaca_3k.json"  # tests/data/README.md
FIGURES = ROOT / ".pytest_cache" / "reliability" / "figures.json"
MODEL = "openai/fake-model"


def alpaca(n: int, start: int = 0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(ALPACA_3K.read_text(encoding="utf-8"))
    if start + n > len(rows):
        raise ValueError(f"tests/data/alpaca_3k.json has {len(rows)} rows; asked for {start}..{start + n}")
    return rows[start : start + n]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def rate_argv(data: Path, url: str, cache: Path, out: Path | None, *extra: str) -> list[str]:
    argv = [sys.executable, "-m", "winnow", "rate", str(data), "--judge", "alpagasus", "--model", MODEL,
            "--api-base", url, "--cache-dir", str(cache), "-q"]
    if out is not None:
        argv += ["-o", str(out)]
    return [*argv, *extra]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("OPENAI_API_KEY", None)
    env.pop("WINNOW_CACHE_DIR", None)
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def launch(argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start the CLI in a new session (its own process group), output captured to pipes."""
    return subprocess.Popen(argv, cwd=ROOT, env=env or child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=env or child_env(), capture_output=True, text=True,
                          timeout=timeout, start_new_session=True)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def wait_until(predicate: Any, timeout: float, step: float = 0.002) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def record_figures(section: str, figures: dict[str, Any]) -> None:
    """Merge ``figures`` under ``section`` into the figures file and print them (pytest -s)."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(FIGURES.read_text())
    except (OSError, ValueError):
        data = {}
    data[section] = figures
    FIGURES.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(f"\nRELIABILITY {section}: {json.dumps(figures, sort_keys=True)}")


def cached_records(cache_dir: Path) -> list[dict[str, Any]]:
    from winnow.cache import JudgmentCache

    with JudgmentCache(cache_dir) as cache:
        return list(cache.records())
