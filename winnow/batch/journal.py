"""The batch job's write-ahead journal: what was prepared, uploaded and created, before the next step.

Why: a crash between creating a batch at the provider and recording its id would pay twice on
resume.  Each step is written (atomically: temp file, fsync, rename) before the call that acts on
it, and each batch carries metadata naming the job and the chunk, so a resume finds a batch the
journal missed by listing the provider's batches instead of creating it again.
Journals live in ``<cache dir>/batches/<job>.json``, beside the judgments they produce.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Chunk", "Job", "jobs_dir", "list_jobs", "load_job", "new_job", "now"]

FINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class Chunk:
    name: str  # "r1c2": round 1, chunk 2 (the batch metadata carries it)
    file: str  # the local JSONL of requests
    requests: int
    keys_file: str  # custom_id (the cache key) per line, in order
    input_file_id: str | None = None
    batch_id: str | None = None
    status: str = "prepared"  # prepared, uploaded, creating, then the provider's status
    creating_at: float | None = None  # when the create call was about to be sent
    ingested: bool = False
    counts: dict[str, Any] = field(default_factory=dict)
    estimated_cost: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)  # cache key -> the provider's reason (error file)
    provider_errors: list[str] = field(default_factory=list)  # the batch's own errors (validation, limits)
    submit_error: str | None = None  # the provider refused the upload or create: no batch exists (yet)


@dataclass
class Job:
    job: str
    created_at: str
    provider: str
    api_base: str | None
    rate: dict[str, Any]  # the arguments of the rate call that finishes the job
    rounds: list[list[Chunk]] = field(default_factory=list)
    state: str = "running"  # running, done, cancelled
    expired_once: list[str] = field(default_factory=list)  # keys resubmitted after an expiry
    stopped: str | None = None  # why no more batches are created (--max-cost)
    refreshed_at: str | None = None  # when `batch status` last asked the provider
    command: str | None = None  # the command that started the job: re-running it writes the outputs
    path: str = ""

    def save(self) -> None:
        data = asdict(self)
        data.pop("path")
        target = Path(self.path)
        tmp = target.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    @property
    def chunks(self) -> list[Chunk]:
        return [c for round_ in self.rounds for c in round_]

    def failed_keys(self) -> dict[str, str]:
        """Keys the provider answered with an error in this job (not resubmitted by it)."""
        out: dict[str, str] = {}
        for chunk in self.chunks:
            out.update(chunk.errors)
        return out

    @property
    def submitted(self) -> bool:
        """Whether any batch of the job was accepted by the provider.  A job whose every upload or
        create was refused has nothing running anywhere: it must not read as "running"."""
        return any(c.batch_id is not None for c in self.chunks)

    def submit_error(self) -> str | None:
        """Why the job's batches were never created (the provider's last refusal), if so."""
        if self.submitted:
            return None
        return next((c.submit_error for c in self.chunks if c.submit_error), None)

    @property
    def folder(self) -> Path:
        return Path(self.path).parent / self.job


def now() -> str:
    """A journal timestamp (UTC, ISO 8601)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def jobs_dir(cache_dir: Path) -> Path:
    folder = cache_dir / "batches"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def new_job(cache_dir: Path, provider: str, api_base: str | None, rate: dict[str, Any]) -> Job:
    name = f"wb-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    job = Job(name, now(), provider, api_base, rate,
              path=str(jobs_dir(cache_dir) / f"{name}.json"))
    job.folder.mkdir(parents=True, exist_ok=True)
    job.save()
    return job


def load_job(cache_dir: Path, name: str) -> Job:
    path = jobs_dir(cache_dir) / f"{name}.json"
    if not path.is_file():
        known = ", ".join(j.job for j in list_jobs(cache_dir)) or "none"
        raise ValueError(f"no batch job '{name}' in {path.parent} (jobs: {known})")
    data = json.loads(path.read_text(encoding="utf-8"))
    rounds = [[Chunk(**c) for c in round_] for round_ in data.pop("rounds")]
    return Job(**data, rounds=rounds, path=str(path))


def list_jobs(cache_dir: Path) -> list[Job]:
    folder = cache_dir / "batches"
    if not folder.is_dir():
        return []
    return [load_job(cache_dir, p.stem) for p in sorted(folder.glob("wb-*.json"))]
