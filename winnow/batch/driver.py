"""The batch driver: the engine's plan sent as provider batches, round by round, into the same cache.

A second driver over the same planned calls (``Engine.plan``): the cache-first pass finds what
is missing, this sends only that, as JSONL batches whose ``custom_id`` is the cache key, and
ingests each result line into the cache as the online pass would have recorded it (same key,
same record, ``transport: batch``), so a batch judgment is a cache hit online and the reverse.
A judge that needs several calls (InsTag per turn, DEITA evol) goes on in rounds: after a
round is ingested, planning again yields each judge's next call.  When nothing is left to
send, the job ends with the ordinary ``rate``, offline: every row from the cache.

Never paying twice: every step is journalled before it is taken (``journal.py``); a resume
re-attaches to batches already created (matched by their metadata) instead of creating them.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from winnow.batch.journal import FINAL, Chunk, Job, list_jobs, load_job, new_job, now
from winnow.batch.openai_api import BatchAPIError, OpenAIBatches
from winnow.engine.runner import Interrupted

__all__ = ["BATCH_DISCOUNT", "BatchAPIError", "BatchInterrupted", "BatchOutcome", "JobFinished", "cancel", "collect",
           "describe", "follow_up", "next_step", "refresh", "rerun_hint", "submit",
           "without_detach"]

# Fault injection for the kill -9 tests (tests/test_batch.py): the process SIGKILLs itself at the
# named step, where a crash is most costly: "uploaded", "created" (the batch exists at the
# provider, the journal does not know it yet), "ingest:N" (N result lines cached).
FAULT_ENV = "WINNOW_FAULT_KILL_AT"
BATCH_DISCOUNT = 0.5  # OpenAI and Anthropic batches cost half the online price
MAX_ROUNDS = 64
QUEUED = "queued (enqueued-token limit)"
INGEST_GROUP = 500  # result lines cached per transaction


@dataclass
class BatchOutcome:
    job: Job
    done: bool
    result: Any = None  # the RateResult once the job is done
    message: str = ""
    resumed: bool = False  # submit found the same call's unfinished job and went on with it
    already: bool = False  # collect of a job collected before: nothing new, the outputs written again
    retried: bool = False  # submit found the same call's job, refused before any batch was created, and retried


class JobFinished(ValueError):
    """The job is over (done or cancelled): there is nothing left to cancel."""


class BatchInterrupted(Interrupted):
    """Ctrl-C or SIGTERM while a job was driven.  Its batches go on at the provider and the journal
    holds every step, so nothing is lost: the message names the job and how to go on."""

    def __init__(self, job: Job, cache_dir: Path, signame: str) -> None:
        self.job, self.cache_dir, self.signame = job, cache_dir, signame
        super().__init__(f"interrupted by {signame}; batch job {job.job} goes on at the provider (nothing is lost, "
                         f"nothing is paid twice): `{follow_up('status', job.job, cache_dir)}` shows it, "
                         f"`{follow_up('collect', job.job, cache_dir)} --wait` waits for it and writes the outputs")

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + int(getattr(signal, self.signame, signal.SIGINT))


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the driver is, like Ctrl-C (see ``_sigterm_raises``)."""


def follow_up(verb: str, job: str, cache_dir: Path) -> str:
    """The ``winnow batch VERB JOB`` command to print, with ``--cache-dir`` unless the job lives in
    the built-in default folder: without it, the command would not find the job."""
    from winnow.cache.store import DEFAULT_DIR

    folder = Path(cache_dir).expanduser()
    same = folder.resolve() == DEFAULT_DIR.expanduser().resolve()
    return f"winnow batch {verb} {job}" + ("" if same else f" --cache-dir {shlex.quote(str(folder))}")


def _client(job: Job, api_key: str | None) -> Any:
    """The provider client.  The key is never journalled (secrets stay out of the cache folder):
    it comes from the caller or the provider's environment variable, at every step."""
    return _client_class(job.provider)(job.api_base, api_key)


def _client_class(provider: str) -> Any:
    if provider == "anthropic":
        from winnow.batch.anthropic_api import AnthropicBatches

        return AnthropicBatches
    if provider == "azure":
        from winnow.batch.openai_api import AzureBatches

        return AzureBatches
    return OpenAIBatches


def provider_for(rate: dict[str, Any]) -> str:
    """``anthropic`` when every judge's model is an ``anthropic/`` one, else the OpenAI API
    (OpenAI, Azure-style gateways, vLLM, any --api-base serving /v1/files and /v1/batches)."""
    models = {str(m) for m in (rate["model"], *((rate.get("judge_models") or {}).values())) if m}
    for provider in ("anthropic", "azure"):
        matching = {m for m in models if m.startswith(f"{provider}/")}
        if matching and matching != models:
            raise ValueError(f"--batch sends a job to one provider: give every judge an {provider}/ model, or none")
        if matching:
            return provider
    return "openai"


def judges_of(rate: dict[str, Any]) -> list[Any]:
    """The judges of a journalled rate call: names with one option set (``rate --batch``), or
    ``judge_specs`` with options per judge (a pipeline's steps)."""
    from winnow.api import local_judge_options, make_judges
    from winnow.judges.registry import get_judge

    specs = rate.get("judge_specs")
    if not specs:
        return make_judges(rate["judges"], rate["model"], rate.get("judge_options"), rate.get("structured"))
    judges = []
    for spec in specs:
        model = (rate.get("judge_models") or {}).get(spec["name"].replace("-", "_")) or rate["model"]
        judges.append(get_judge(spec["name"], local_judge_options(model, spec.get("options") or {})))
    return judges


class _Context:
    """The loaded data, judges and engine of a job: everything planning and ingesting need."""

    def __init__(self, rate: dict[str, Any], cache: Any, api_key: str | None) -> None:
        from winnow.api import check_inputs, model_for
        from winnow.data import load
        from winnow.engine.config import EngineSettings, JudgeRun, ModelConfig
        from winnow.engine.runner import Engine
        from winnow.judges.base import response_need
        from winnow.local.files import is_local_model

        data = rate["data"]
        judges = judges_of(rate)
        dataset = load(data, layout=rate.get("layout"), column_map=rate.get("column_map"),
                       id_column=rate.get("id_column"), on_bad_row=rate.get("on_bad_row", "fail"),
                       side=rate.get("side", "chosen"), need_response=response_need(judges))
        if rate.get("limit"):
            del dataset.samples[rate["limit"]:]
        check_inputs(judges, dataset.samples, str(data))
        self.samples = dataset.samples
        self.runs = []
        for judge in judges:
            chosen = model_for(judge, rate["model"], rate.get("judge_models"))
            model = chosen if isinstance(chosen, str) else chosen.model
            if is_local_model(model):
                raise ValueError("--batch needs a provider's batch API; the local judge has none (run it online)")
            self.runs.append(JudgeRun(judge, ModelConfig(model=model, api_base=rate.get("api_base"), api_key=api_key)))
        self.cache = cache
        # --retry-failed: judgments cached as judge_failed are planned (sent) again
        self.engine = Engine(cache, EngineSettings(retry_failed=bool(rate.get("retry_failed"))))

    def plan(self) -> Any:
        return self.engine.plan(self.samples, self.runs)

    def body(self, call: Any) -> dict[str, Any]:
        from winnow.engine.fast_transport import wire_model
        from winnow.engine.litellm_transport import build_kwargs
        from winnow.engine.transport import ChatRequest

        jr, spec, base = self.runs[call.j], call.lookup.spec, call.lookup.base
        request = ChatRequest(model=jr.model.model, messages=spec.messages,
                              params={k: v for k, v in base.params.items() if k != "top_logprobs"},
                              schema=spec.schema, top_logprobs=spec.top_logprobs)
        body = build_kwargs(request)
        body["model"] = wire_model(request.model).removeprefix("azure/")  # Azure: the deployment name
        return body

    def record(self, call: Any, response_body: dict[str, Any]) -> dict[str, Any]:
        """The judgment record of a result line, exactly as the online pass records a reply."""
        from winnow import __version__
        from winnow.engine.fast_transport import cost_of, parse_reply
        from winnow.engine.records import build_record, try_parse

        jr, spec, base = self.runs[call.j], call.lookup.spec, call.lookup.base
        reply = parse_reply(orjson.dumps(response_body), None)
        parsed, error = try_parse(spec, reply)
        cost = BATCH_DISCOUNT * cost_of(jr.model.model, reply.usage.prompt_tokens, reply.usage.completion_tokens)
        return build_record(
            key=call.key, parts=base.template.parts(spec.messages, spec.schema), judge=jr.judge.name, spec=spec,
            sample_id=self.samples[call.i].id, model=jr.model.model, replies=[reply], parsed=parsed, error=error,
            reasks=[], attempts=1, cost=cost, latency=0.0, transport="batch", version=__version__,
        )


def submit(rate: dict[str, Any], *, cache_dir: Path, detach: bool = False, poll_seconds: float = 30.0,
           on_status: Callable[[Job], None] | None = None, api_key: str | None = None,
           command: str | None = None) -> BatchOutcome:
    """Start a batch job for the rate call described by ``rate`` (``api.rate``'s arguments).

    With ``detach`` it returns once the first round is submitted; otherwise it waits, polling
    every ``poll_seconds``, and ends like an online rate (``BatchOutcome.result``).  An unfinished
    job of the same call is resumed, not started again: its batches, not yet ingested, would
    otherwise be planned and bought a second time.  ``command`` (the command line, key hidden)
    is journalled so that ``batch collect`` can say what writes a pipeline's outputs."""
    if "api_key" in rate:
        raise ValueError("pass api_key= to submit, not in the journalled rate arguments")
    job = _unfinished(cache_dir, rate)
    retried = job is not None and bool(job.chunks) and not job.submitted
    resumed = job is not None and not retried
    if job is None:
        job = new_job(cache_dir, provider_for(rate), rate.get("api_base"), rate)
    job.rate["output"] = rate.get("output")  # the output is the one thing a re-run may change
    job.command = command or job.command
    job.save()
    outcome = _drive(job, cache_dir, wait=not detach, poll_seconds=poll_seconds, on_status=on_status,
                     api_key=api_key)
    outcome.resumed, outcome.retried = resumed, retried
    return outcome


def _unfinished(cache_dir: Path, rate: dict[str, Any]) -> Job | None:
    """The running job of this very rate call (the output file aside), if there is one."""
    want = _comparable(rate)
    for job in reversed(list_jobs(cache_dir)):
        if job.state == "running" and _comparable(job.rate) == want:
            return job
    return None


def _comparable(rate: dict[str, Any]) -> Any:
    """Rate arguments as the journal stores them (JSON: tuples become lists), output left out."""
    return json.loads(json.dumps({k: v for k, v in rate.items() if k != "output"}, sort_keys=True, default=str))


def collect(name: str, *, cache_dir: Path, wait: bool = False, poll_seconds: float = 30.0,
            on_status: Callable[[Job], None] | None = None, api_key: str | None = None) -> BatchOutcome:
    """Resume a job: re-attach to its batches, ingest what finished, submit the next round when
    one is due, and write the outputs once nothing is left to send."""
    job = load_job(cache_dir, name)
    if job.state == "cancelled":
        return BatchOutcome(job, True, None, "cancelled")
    if job.state == "done":
        return _collected_again(job, cache_dir, api_key)
    return _drive(job, cache_dir, wait=wait, poll_seconds=poll_seconds, on_status=on_status, api_key=api_key)


def _collected_again(job: Job, cache_dir: Path, api_key: str | None) -> BatchOutcome:
    """A job collected before: its outputs are written again from the cache, and its judgments
    count as cache hits.  Folding in what the job bought (as its first collect did) would report
    the same judgments as new, and paid for, a second time."""
    result = _finish(job, cache_dir, api_key, lambda stats: None)
    return BatchOutcome(job, True, result, "already collected", already=True)


def cancel(name: str, *, cache_dir: Path, api_key: str | None = None) -> Job:
    """Cancel every batch of the job still running; what finished stays (collect ingests it).
    A job that is over is refused (``JobFinished``): a done job's outputs are written, and
    calling it cancelled would misstate what was bought."""
    job = load_job(cache_dir, name)
    if job.state != "running":
        raise JobFinished(f"batch job {name} is {job.state}: there is nothing to cancel")
    client = _client(job, api_key)
    for chunk in job.chunks:
        if chunk.batch_id and chunk.status not in FINAL:
            chunk.status = str(client.cancel(chunk.batch_id).get("status", "cancelling"))
    job.state = "cancelled"
    job.save()
    return job


def refresh(name: str, *, cache_dir: Path, api_key: str | None = None) -> Job:
    """Ask the provider how each unfinished batch of a running job stands, and journal the answer
    (``batch status``): without it a detached job would never show finished.  Nothing is
    downloaded or ingested (``collect`` does that), and the journal is re-read before the save so
    that a ``collect`` running meanwhile keeps what it ingested."""
    job = load_job(cache_dir, name)
    if job.state != "running":
        return job
    client = _client(job, api_key)
    answers = {c.name: client.retrieve(c.batch_id) for c in job.chunks
               if c.batch_id and not c.ingested and c.status not in FINAL}
    job = load_job(cache_dir, name)
    for chunk in job.chunks:
        batch = answers.get(chunk.name)
        if batch is not None and not chunk.ingested and str(batch.get("id")) == chunk.batch_id:
            _note(chunk, batch)
    job.refreshed_at = now()
    job.save()
    return job


def _note(chunk: Chunk, batch: dict[str, Any]) -> None:
    """The provider's word on a batch: its status, counts and own errors (validation, limits)."""
    chunk.status = str(batch.get("status"))
    chunk.counts = dict(batch.get("request_counts") or {})
    data = (batch.get("errors") or {}).get("data") or []
    chunk.provider_errors = [f"{e.get('code') or 'error'}: {e.get('message') or 'no message'}"[:300]
                             for e in data if isinstance(e, dict)]


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM stops the driver the way Ctrl-C does (an exception, not a silent death), so the
    caller can say which job goes on and how to collect it.  Main thread only (Python's rule)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        raise _Terminated()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _drive(job: Job, cache_dir: Path, *, wait: bool, poll_seconds: float,
           on_status: Callable[[Job], None] | None, api_key: str | None) -> BatchOutcome:
    """``_rounds`` with a signal turned into ``BatchInterrupted``, which names the job."""
    try:
        with _sigterm_raises():
            return _rounds(job, cache_dir, wait=wait, poll_seconds=poll_seconds, on_status=on_status,
                           api_key=api_key)
    except _Terminated:
        raise BatchInterrupted(job, cache_dir, "SIGTERM") from None
    except KeyboardInterrupt:
        raise BatchInterrupted(job, cache_dir, "SIGINT") from None
    except BatchInterrupted:
        raise
    except Interrupted as exc:  # the offline pass that writes the outputs was stopped
        raise BatchInterrupted(job, cache_dir, "SIGTERM" if "SIGTERM" in str(exc) else "SIGINT") from None


def _rounds(job: Job, cache_dir: Path, *, wait: bool, poll_seconds: float,
            on_status: Callable[[Job], None] | None, api_key: str | None) -> BatchOutcome:
    from winnow.api import open_cache

    started = time.monotonic()
    client = _client(job, api_key)
    with open_cache(cache_dir) as cache:
        context = _Context(job.rate, cache, api_key)
        for _ in range(MAX_ROUNDS):
            round_ = job.rounds[-1] if job.rounds and not all(c.ingested for c in job.rounds[-1]) else None
            if round_ is None and job.stopped:
                break
            if round_ is None:
                plan = context.plan()
                calls = plan.distinct_calls(skip=job.failed_keys())
                if not calls:
                    break
                round_ = _prepare_round(job, context, calls)
            for chunk in round_:
                if chunk.status == QUEUED and any(c.batch_id and c.status not in FINAL for c in round_):
                    continue  # waits until the provider's queue has room
                if chunk.batch_id is None and _over_budget(job, chunk):
                    chunk.status, chunk.ingested = "not sent (--max-cost)", True
                    job.stopped = (f"--max-cost {job.rate['max_cost']:g} reached (estimated, batches not yet "
                                   "collected included)")
                    job.save()
                    continue
                _ensure_created(job, client, chunk)
            if on_status is not None:
                on_status(job)
            if not wait and not _poll(job, client, context, round_):
                return BatchOutcome(job, False, None, f"submitted: {job.job}")
            while wait and not _poll(job, client, context, round_):
                if on_status is not None:
                    on_status(job)
                time.sleep(poll_seconds)
                for chunk in round_:  # a chunk queued by the enqueued-token limit goes when there is room
                    if chunk.status == QUEUED and not any(c.batch_id and c.status not in FINAL for c in round_):
                        _ensure_created(job, client, chunk)
        bought = _bought(job, cache)
    result = _finish(job, cache_dir, api_key, lambda stats: bought.fold_into(stats, started))
    return BatchOutcome(job, True, result, "done")


def _fault(point: str) -> None:
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _over_budget(job: Job, chunk: Chunk) -> bool:
    """Would creating ``chunk`` pass ``--max-cost``?  Every batch created counts, collected or not,
    at its estimate (an upper bound: every reply as long as max_tokens allows)."""
    limit = job.rate.get("max_cost")
    if limit is None:
        return False
    committed = sum(c.estimated_cost for c in job.chunks if c.batch_id is not None)
    return committed + chunk.estimated_cost > float(limit)


def _prepare_round(job: Job, context: _Context, calls: list[Any]) -> list[Chunk]:
    """Write the round's request files and journal them, before anything is uploaded."""
    number = len(job.rounds) + 1
    limits = _client_class(job.provider)
    by_model: dict[str, list[Any]] = {}
    for call in calls:  # one model per file (OpenAI's rule)
        by_model.setdefault(context.runs[call.j].model.model, []).append(call)
    chunks: list[Chunk] = []
    for group in by_model.values():
        lines: list[bytes] = []
        keys: list[str] = []
        size = 0
        price_in, price_out = _batch_prices(context.runs[group[0].j].model.model)
        cost = 0.0
        for call in group:
            line = orjson.dumps({"custom_id": call.key, "method": "POST", "url": limits.endpoint,
                                 "body": context.body(call)})
            if lines and (len(lines) >= limits.max_requests or size + len(line) + 1 > limits.max_bytes):
                chunks.append(_write_chunk(job, number, len(chunks) + 1, lines, keys, cost))
                lines, keys, size, cost = [], [], 0, 0.0
            lines.append(line)
            keys.append(call.key)
            size += len(line) + 1
            cost += len(line) / 4 * price_in + int(call.lookup.base.params.get("max_tokens") or 512) * price_out
        if lines:
            chunks.append(_write_chunk(job, number, len(chunks) + 1, lines, keys, cost))
    job.rounds.append(chunks)
    job.save()
    return chunks


def _batch_prices(model: str) -> tuple[float, float]:
    from winnow.engine.fast_transport import token_prices  # litellm's table without importing litellm

    price_in, price_out = token_prices(model)
    return price_in * BATCH_DISCOUNT, price_out * BATCH_DISCOUNT


def _write_chunk(job: Job, number: int, index: int, lines: list[bytes], keys: list[str], cost: float) -> Chunk:
    name = f"r{number}c{index}"
    path = job.folder / f"{name}.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    keys_path = job.folder / f"{name}.keys"
    keys_path.write_text("\n".join(keys) + "\n")
    return Chunk(name, str(path), len(lines), str(keys_path), estimated_cost=round(cost, 6))


def _ensure_created(job: Job, client: Any, chunk: Chunk) -> None:
    """Upload and create the chunk's batch unless the journal, or the provider, has it already.
    A refusal is journalled on the chunk before it is raised: ``batch status`` then says the job
    was never submitted, and why, instead of "still running at the provider"; the next
    ``submit`` of the same call (or ``batch collect``) tries again."""
    if chunk.batch_id is not None:
        return
    try:
        _create(job, client, chunk)
    except BatchAPIError as exc:
        chunk.submit_error = str(exc)[:500]
        job.save()
        raise
    if chunk.submit_error is not None:  # an earlier refusal, now overcome
        chunk.submit_error = None
        job.save()


def _create(job: Job, client: Any, chunk: Chunk) -> None:
    """The upload and create calls, each journalled before it is made (never paying twice)."""
    found = None
    if chunk.status != "prepared":  # uploaded or creating: a crash may have hidden a batch
        found = client.find(job.job, chunk.name, chunk.requests, chunk.creating_at)
    if found is None:
        if chunk.input_file_id is None:
            chunk.input_file_id = client.upload(Path(chunk.file))
            chunk.status = "uploaded"
            job.save()
            _fault("uploaded")
        chunk.status, chunk.creating_at = "creating", time.time()
        job.save()
        found = client.create(chunk.input_file_id, client.endpoint, {"winnow_job": job.job, "winnow_chunk": chunk.name})
        _fault("created")
    chunk.batch_id = str(found["id"])
    chunk.status = str(found.get("status", "validating"))
    job.save()


def _poll(job: Job, client: Any, context: _Context, round_: list[Chunk]) -> bool:
    """Retrieve each unfinished batch; ingest the finished ones.  True when the round is ingested."""
    for chunk in round_:
        if chunk.ingested or chunk.batch_id is None:
            continue
        batch = client.retrieve(chunk.batch_id)
        _note(chunk, batch)
        if chunk.status in FINAL:
            _ingest(job, client, context, chunk, batch)
        job.save()
    return all(c.ingested for c in round_)


def _ingest(job: Job, client: Any, context: _Context, chunk: Chunk, batch: dict[str, Any]) -> None:
    """Stream the output file into the cache line by line (a crash loses nothing: a resume skips
    what is already cached), and record the error file's reasons."""
    keys = Path(chunk.keys_file).read_text().split()
    wanted = set(keys)
    by_key = {c.key: c for c in context.plan().calls if c.key in wanted}
    cache = context.cache
    ingested = 0
    if batch.get("output_file_id"):
        group: list[dict[str, Any]] = []
        for line in client.lines(str(batch["output_file_id"])):
            group.append(orjson.loads(line))
            if len(group) >= INGEST_GROUP:
                ingested = _ingest_group(context, chunk, by_key, group, ingested)
                group = []
        if group:
            _ingest_group(context, chunk, by_key, group, ingested)
    if batch.get("error_file_id"):
        for line in client.lines(str(batch["error_file_id"])):
            item = orjson.loads(line)
            chunk.errors[str(item.get("custom_id"))] = _reason(item)
    if chunk.status == "failed":  # the whole file was refused (validation, or the queue is full)
        message = "; ".join(str(e.get("message")) for e in (batch.get("errors") or {}).get("data") or [])
        codes = " ".join(str(e.get("code")) for e in (batch.get("errors") or {}).get("data") or [])
        if "token_limit" in codes or "enqueued token limit" in message.lower():
            # the provider's enqueued-token limit: nothing was run or paid; this chunk waits for
            # the job's running batches to finish, then is created again
            chunk.batch_id, chunk.status = None, QUEUED
            return
        for key in keys:
            chunk.errors.setdefault(key, f"batch validation failed: {message or 'no reason given'}")
    if chunk.status == "expired":  # unfinished lines go again in the next round, once
        again = [k for k in keys if context.engine.cached_usable(cache.get(k)) is None and k not in chunk.errors]
        for key in again:
            if key in job.expired_once:
                chunk.errors[key] = "expired twice before the provider answered"
        job.expired_once.extend(k for k in again if k not in job.expired_once)
    chunk.ingested = True


def _ingest_group(context: _Context, chunk: Chunk, by_key: dict[str, Any], items: list[dict[str, Any]],
                  ingested: int) -> int:
    """Cache one group of result lines in one transaction.  A crash loses at most the group in
    hand, which the provider's output file still holds: a resume ingests it again."""
    cache = context.cache
    present = cache.get_many([str(item.get("custom_id")) for item in items], slim=True)
    records = []
    for item in items:
        key = str(item.get("custom_id"))
        call = by_key.get(key)
        response = item.get("response") or {}
        # a usable record is already here (a resume re-reading this file); a failed one asked
        # again under --retry-failed is not, and the answer bought for it replaces it
        if call is None or context.engine.cached_usable(present.get(key)) is not None:
            continue
        if item.get("error") or response.get("status_code") != 200:
            chunk.errors[key] = _reason(item)
            continue
        records.append((key, context.record(call, response["body"])))
        ingested += 1
        _fault(f"ingest:{ingested}")  # the tests' kill -9 while ingesting: this group is not yet committed
    cache.put_many(records)
    return ingested


def _reason(item: dict[str, Any]) -> str:
    error = item.get("error") or (item.get("response") or {}).get("body", {}).get("error") or {}
    if isinstance(error, dict):
        return f"{error.get('code') or 'error'}: {error.get('message') or 'no message'}"[:300]
    return str(error)[:300]


@dataclass
class _Bought:
    """What the job bought: the judgments its batches brought into the cache, and their price."""

    judgments: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def fold_into(self, stats: Any, started: float) -> None:
        """Count the job's judgments as this run's, as an online run counts its calls: the offline
        pass that writes the outputs read them back as cache hits (a run that bought 30 would
        report "30 from cache, 0 new, $0").  ``started``: the driver's start, for the elapsed time."""
        stats.cache_hits = max(0, stats.cache_hits - self.judgments)
        stats.calls += self.judgments
        stats.requests += self.requests
        stats.prompt_tokens += self.prompt_tokens
        stats.completion_tokens += self.completion_tokens
        stats.cost += self.cost
        if self.judgments:
            stats.transports["batch"] += self.judgments
        stats.started = min(stats.started, started)


def _bought(job: Job, cache: Any) -> _Bought:
    """Read from the cache what the job's batches brought: every key a batch of the job carried
    whose record came by batch.  From the cache, not counted while ingesting, so a job resumed
    after a crash (or collected by another process) counts what it bought once, in full."""
    sent = [c for c in job.chunks if c.batch_id is not None]
    keys = list(dict.fromkeys(k for c in sent for k in Path(c.keys_file).read_text().split()))
    bought = _Bought(requests=sum(c.requests for c in sent))
    for record in cache.get_many(keys).values():
        if record.get("transport") != "batch":
            continue
        usage = record.get("usage") or {}
        bought.judgments += 1
        bought.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        bought.completion_tokens += int(usage.get("completion_tokens") or 0)
        bought.cost += float(record.get("cost") or 0.0)
    return bought


def _finish(job: Job, cache_dir: Path, api_key: str | None, on_stats: Callable[[Any], None]) -> Any:
    """Write the outputs: the ordinary rate, offline (every judgment is in the cache now), its
    stats corrected by ``on_stats`` to count what the job bought."""
    from winnow.api import rate
    from winnow.engine.config import EngineSettings

    skip = ("data", "judges", "model", "judge_specs", "max_cost", "retry_failed")
    args = {k: v for k, v in job.rate.items() if k not in skip}
    args["cache_dir"] = cache_dir
    args["api_key"] = api_key
    result = rate(job.rate["data"], judges_of(job.rate), job.rate["model"],
                  settings=EngineSettings(offline=True), on_stats=on_stats, **args)
    job.state = "done"
    job.save()
    return result


def describe(job: Job) -> list[str]:
    """One line per batch: state, counts, estimated cost and the provider's errors (``winnow
    batch status``), and when the provider was last asked."""
    asked = f"; provider asked {job.refreshed_at}" if job.refreshed_at and job.state == "running" else ""
    lines = [f"{job.job}: {shown_state(job)}, {len(job.chunks)} batches in {len(job.rounds)} rounds, {job.provider}"
             + (f"; stopped: {job.stopped}" if job.stopped else "") + asked]
    for chunk in job.chunks:
        counts = ", ".join(f"{k} {v}" for k, v in chunk.counts.items()) or f"{chunk.requests} requests"
        lines.append(f"  {chunk.name}: {chunk.status}{' (ingested)' if chunk.ingested else ''}; {counts}; "
                     f"~${chunk.estimated_cost:.4f} at batch rates; batch {chunk.batch_id or '-'}")
        if chunk.submit_error and chunk.batch_id is None:
            lines.append(f"    failed to submit: {chunk.submit_error}")
        lines.extend(f"    provider error: {reason}" for reason in chunk.provider_errors)
        for key, reason in list(chunk.errors.items())[:3]:
            lines.append(f"    error {key}: {reason}")
    return lines


def shown_state(job: Job) -> str:
    """The job's state as ``batch status`` shows it: a running job none of whose batches the
    provider accepted is "not submitted", not running (nothing runs at the provider)."""
    if job.state == "running" and job.chunks and not job.submitted:
        reason = job.submit_error()
        return f"not submitted (failed to submit: {reason})" if reason else "not submitted"
    return job.state


def next_step(job: Job, cache_dir: Path) -> str:
    """What the user does next with this job, as a command to copy (``batch status``)."""
    collect_cmd = follow_up("collect", job.job, cache_dir)
    if job.state == "running" and job.chunks and not job.submitted:
        again = f"`{job.command}`" if job.command else "the same command"
        return (f"nothing was submitted, nothing is paid: once the cause is fixed, {again} or `{collect_cmd}` "
                "submits it again")
    if job.state == "cancelled":
        return "cancelled: what finished is in the cache; a new run asks for the rest"
    if job.state == "done":
        output = job.rate.get("output")
        return f"done: outputs written to {output}" if output else f"done: {rerun_hint(job)}"
    waiting = [c for c in job.chunks if not c.ingested and (c.batch_id is None or c.status not in FINAL)]
    if waiting:
        return f"still running at the provider: `{collect_cmd} --wait` waits for it and writes the outputs"
    return (f"every batch has finished at the provider: `{collect_cmd}` ingests the results and writes the "
            "outputs (judges that ask in rounds go on with the next round)")


def rerun_hint(job: Job) -> str:
    """How to write the outputs of a job that names none (a pipeline's, or ``rate`` without -o):
    re-run its command, which now reads every judgment from the cache and sends nothing."""
    command = without_detach(job.command) if job.command else None
    if job.rate.get("judge_specs"):  # a pipeline's job: the pipeline writes its own outputs
        what = f"`{command}`" if command else "the pipeline (`winnow run PIPELINE.yaml`, same --cache-dir)"
        return (f"every judgment is in the cache, but a pipeline's outputs are written by the pipeline: run "
                f"{what} again; it reads everything from the cache and sends nothing")
    what = f"`{command} -o FILE`" if command else "the same `winnow rate` command with -o FILE"
    return f"every judgment is in the cache; no -o was given, so no file was written: run {what} to write them"


def without_detach(command: str) -> str:
    """The job's command without ``--detach``: re-running it should wait and write the outputs."""
    return shlex.join(part for part in shlex.split(command) if part != "--detach")


