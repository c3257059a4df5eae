"""Dry-run cost estimate: how many calls a rate would send, their tokens and price, sending nothing.

It replays the engine's cache-first pass (``winnow.engine.feed``): each judge's coroutine is
driven by hand with an ``ask`` that answers from the cache and stops at the first miss, so
the cache keys are computed by the engine's own ``call_base`` and a hit here is a hit
in the real run.  This is the one audit module that reads the engine (the lead's brief:
``--dry-run`` must agree with the engine on what is cached); it imports it inside
``estimate`` only and never sends a request.

Token counts: input tokens of every call still to send, by ``litellm.token_counter`` on the
rendered messages (tiktoken for OpenAI-style models; litellm falls back to a default
encoding for unknown names), or characters / 4 when litellm cannot count.  When the cache
holds 20+ replies of the same model and address, the count is scaled by the ratio of the
tokens that server reported to the tokens counted for those same prompts (its tokenizer is
rarely tiktoken).  Calls that are
not rendered yet are estimated: a multi-turn InsTag/DEITA sample sends one call per user
turn (each turn's first call is rendered by ``judge.preview``); DEITA ``evol`` sends
``evolutions`` + 1 calls per turn, estimated as that many times its first call.  Output
tokens: the mean completion tokens of this judge's cached records (same fingerprint and
model first, then any model), else the call's ``max_tokens`` (an upper bound).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson

__all__ = ["CostEstimate", "JudgeEstimate", "estimate", "estimate_judge", "format_estimate", "open_for_reading"]


@dataclass
class JudgeEstimate:
    judge: str
    model: str
    samples: int = 0
    cached_samples: int = 0  # fully answered from the cache
    calls: int = 0  # requests still to send (re-asks and retries not counted)
    input_tokens: int = 0
    output_tokens: int = 0
    output_basis: str = ""  # where the output tokens per call came from
    input_basis: str = ""  # how input tokens were counted (and calibrated)
    price_in: float = 0.0  # dollars per token (batch rates when the estimate is for --batch)
    price_out: float = 0.0

    @property
    def cost(self) -> float:
        return self.input_tokens * self.price_in + self.output_tokens * self.price_out


@dataclass
class CostEstimate:
    rows: int
    judges: list[JudgeEstimate] = field(default_factory=list)
    counter: str = "litellm"
    batch: bool = False  # priced at batch rates
    cache_note: str = ""  # why no cached call was counted (no cache yet, --no-cache)

    @property
    def calls(self) -> int:
        return sum(j.calls for j in self.judges)

    @property
    def input_tokens(self) -> int:
        return sum(j.input_tokens for j in self.judges)

    @property
    def output_tokens(self) -> int:
        return sum(j.output_tokens for j in self.judges)

    @property
    def cost(self) -> float:
        return sum(j.cost for j in self.judges)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "calls": self.calls, "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens, "cost": round(self.cost, 6), "counter": self.counter,
            "judges": [
                {**{k: getattr(j, k) for k in ("judge", "model", "samples", "cached_samples", "calls",
                                               "input_tokens", "output_tokens", "input_basis",
                                               "output_basis")},
                 "cost": round(j.cost, 6)}
                for j in self.judges
            ],
        }


Messages = list[dict[str, str]]


class _Miss(Exception):
    pass


def _make_counter(model: str) -> tuple[Callable[[list[dict[str, str]]], int], str]:
    def by_chars(messages: list[dict[str, str]]) -> int:
        return max(1, sum(len(str(m.get("content") or "")) for m in messages) // 4)

    try:
        from winnow.engine.litellm_transport import import_litellm

        litellm = import_litellm()
        litellm.token_counter(model=model, messages=[{"role": "user", "content": "probe"}])
    except Exception:  # litellm missing or cannot count this model
        return by_chars, "chars/4"

    def by_litellm(messages: list[dict[str, str]]) -> int:
        try:
            return int(litellm.token_counter(model=model, messages=messages))
        except Exception:
            return by_chars(messages)

    return by_litellm, "litellm"


@dataclass
class _CacheFacts:
    """What the cache already says about replies and the server's tokenizer."""

    exact_means: dict[tuple[str, str, str], float] = field(default_factory=dict)
    judge_means: dict[str, float] = field(default_factory=dict)
    # (model, api_base) -> [(recorded prompt tokens, sent messages)], a few hundred at most
    prompts: dict[tuple[str, str | None], list[tuple[int, Messages]]] = field(default_factory=dict)


CALIBRATION_RECORDS = 200


def _cache_facts(cache: Any) -> _CacheFacts:
    """Mean completion tokens per (judge, fingerprint, model) and per judge; calibration samples."""
    sums: dict[Any, list[float]] = defaultdict(lambda: [0.0, 0.0])
    facts = _CacheFacts()
    for record in cache.records():
        usage = record.get("usage") or {}
        tokens = usage.get("completion_tokens")
        if not isinstance(tokens, int) or record.get("status") != "ok":
            continue
        exact = (record.get("judge"), record.get("fingerprint"), record.get("model"))
        for key in (exact, record.get("judge")):
            sums[key][0] += tokens
            sums[key][1] += 1
        messages = (record.get("key_parts") or {}).get("messages")
        prompt = usage.get("prompt_tokens")
        if not record.get("reasks") and isinstance(prompt, int) and isinstance(messages, list):
            seen = facts.prompts.setdefault((str(record.get("model")), record.get("api_base")), [])
            if len(seen) < CALIBRATION_RECORDS:
                seen.append((prompt, messages))
    facts.exact_means = {k: s / n for k, (s, n) in sums.items() if isinstance(k, tuple) and n}
    facts.judge_means = {k: s / n for k, (s, n) in sums.items() if isinstance(k, str) and n}
    return facts


def _calibration(
    facts: _CacheFacts, model: str, api_base: str | None, count: Callable[[list[dict[str, str]]], int]
) -> float | None:
    """recorded / counted prompt tokens over cached calls to this model and address.

    A server's tokenizer is rarely tiktoken (Llama, Qwen, ... on vLLM; the fake server's
    chars/4), so once the cache holds some of its replies the estimate is scaled to what the
    server itself reports.  None without at least 20 such records.
    """
    from winnow.cache.key import normalise_api_base

    seen = facts.prompts.get((model, normalise_api_base(api_base)), [])
    if len(seen) < 20:
        return None
    counted = sum(count(m) for _, m in seen)
    return sum(p for p, _ in seen) / counted if counted else None


def _first_miss(engine: Any, jr: Any, sample: Any) -> tuple[int, Any]:
    """Drive the judge as the engine's cache-first pass does: (cache hits before the first miss,
    the missed CallSpec).  Hits -1 when the whole sample is answered from the cache."""
    from winnow.engine.feed import lookup_for
    from winnow.judges.base import Answer

    hits = 0
    missed: list[Any] = []

    async def ask(spec: Any) -> Answer:
        nonlocal hits
        record = engine.cached(lookup_for(engine.call_base, jr, spec).key)
        if record is None:
            missed.append(spec)
            raise _Miss
        hits += 1
        return Answer(record, cached=True)

    coro = jr.judge.judge(sample, ask)
    try:
        coro.send(None)
    except StopIteration:
        return -1, None
    except _Miss:
        return hits, missed[0]
    coro.close()  # awaited something other than ask: count it as not cached
    return hits, None


def open_for_reading(cache_dir: str | Path | None, use_cache: bool = True) -> tuple[Any, str]:
    """(cache, note) for a dry run, which must create nothing: the existing cache opened without
    creating one, or, where the folder holds none yet, an empty stand-in (every call is then
    to send) and a note saying so.  ``rate`` creates the cache when it first stores a judgment."""
    from winnow.cache import JudgmentCache, NullCache, default_cache_dir, holds_cache

    if not use_cache:
        return NullCache(), "--no-cache: every call counts as to send"
    directory = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    if not holds_cache(directory):
        return NullCache(), f"no winnow cache at {directory} yet: every call counts as to send"
    return JudgmentCache(directory, create=False), ""


@dataclass
class _Pricing:
    """What prices and counts one model's calls in an estimate."""

    count: Callable[[Messages], int]
    counter: str
    scale: float | None  # the server's own tokens / counted tokens, from cached calls
    price_in: float = 0.0
    price_out: float = 0.0


def _pricing(facts: _CacheFacts, model: str, api_base: str | None, batch: bool,
             counters: dict[str, tuple[Callable[[Messages], int], str]]) -> _Pricing:
    """Token counter, calibration and per-token prices for ``model`` (zero for local models)."""
    from winnow.engine.pricing import token_prices

    if model not in counters:
        counters[model] = _make_counter(model)
    count, counter = counters[model]
    pricing = _Pricing(count, counter, _calibration(facts, model, api_base, count))
    if not (model == "local" or model.startswith("local/")):
        pricing.price_in, pricing.price_out = token_prices(model)
        if batch:  # provider batches cost half (winnow.batch.driver.BATCH_DISCOUNT)
            from winnow.batch.driver import BATCH_DISCOUNT

            pricing.price_in, pricing.price_out = pricing.price_in * BATCH_DISCOUNT, pricing.price_out * BATCH_DISCOUNT
    return pricing


def estimate_judge(engine: Any, jr: Any, samples: Sequence[Any], facts: _CacheFacts, pricing: _Pricing,
                   fingerprints: Sequence[str] = ()) -> JudgeEstimate:
    """What the engine would send for one judge run over ``samples``, replaying its cache-first pass.

    Shared by ``rate --dry-run`` and ``audit stability --dry-run`` so both count cached calls and
    price replies the same way.  Output tokens per call: the mean of cached replies of this judge
    with the first of ``fingerprints`` (default: the judge's own) that has any, on this model;
    then of this judge on any model; else ``max_tokens`` (an upper bound).
    """
    judge = jr.judge
    est = JudgeEstimate(judge.name, jr.model.model, price_in=pricing.price_in, price_out=pricing.price_out)
    count, scale = pricing.count, pricing.scale
    per_turn = judge.evolutions + 1 if getattr(judge, "mode", None) == "evol" else 1
    out_max: list[int] = []
    seen: set[bytes] = set()
    for sample in samples:
        est.samples += 1
        hits, missed = _first_miss(engine, jr, sample)
        if hits < 0:
            est.cached_samples += 1
            continue
        first = missed.messages if missed else []
        preview = getattr(judge, "preview", None)
        turns = [m for _, m in preview(sample)] if callable(preview) else [first]
        done_turns, partial = divmod(hits, per_turn)
        calls = 0
        for idx, messages in enumerate(turns[done_turns:]):
            blob = orjson.dumps(messages)
            if blob in seen:  # an identical prompt of another sample: one request serves both
                continue
            seen.add(blob)
            n = per_turn - (partial if idx == 0 else 0)
            calls += n
            est.input_tokens += round(count(messages) * n * (scale or 1.0))
        est.calls += calls
        if missed:
            cap = missed.params.get("max_tokens") or judge.params.get("max_tokens")
            out_max.append(int(cap or 0) * calls)
    est.input_basis = (f"{pricing.counter} x {scale:.3f}, the server's own ratio on cached calls"
                       if scale is not None else pricing.counter)
    mean = _mean_reply(facts, judge.name, [*fingerprints] or [judge.fingerprint], jr.model.model)
    if mean is not None:
        est.output_tokens = round(mean * est.calls)
        est.output_basis = f"mean of cached {judge.name} replies ({mean:.0f} tokens/call)"
    else:
        est.output_tokens = sum(out_max)
        est.output_basis = "max_tokens per call (upper bound)"
    return est


def _mean_reply(facts: _CacheFacts, judge: str, fingerprints: Sequence[str], model: str) -> float | None:
    """Mean completion tokens of cached replies: the first fingerprint with any, then the judge's."""
    for fingerprint in fingerprints:
        mean = facts.exact_means.get((judge, fingerprint, model))
        if mean is not None:
            return mean
    return facts.judge_means.get(judge)


def estimate(
    data: str | Path,
    judges: Sequence[str],
    model: str,
    *,
    api_base: str | None = None,
    judge_models: dict[str, str] | None = None,
    judge_options: dict[str, Any] | None = None,
    structured: bool | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    on_bad_row: str = "fail",
    layout: str | None = None,
    column_map: dict[str, str] | None = None,
    id_column: str | None = None,
    settings: Any = None,
    batch: bool = False,
    limit: int | None = None,
    side: str = "chosen",
) -> CostEstimate:
    """What ``rate`` with the same arguments would send, before anything is sent.

    Same parameter names as ``winnow.api.rate``.  Local models (``local``) are priced at zero
    and their cache is not consulted (their identity comes from the server a run starts).
    Creates nothing: a cache folder that does not exist yet counts every call as to send.
    """
    from winnow.api import check_judge_models, make_judges, model_for
    from winnow.data import load
    from winnow.engine.config import EngineSettings, JudgeRun, ModelConfig
    from winnow.engine.runner import Engine
    from winnow.judges.base import response_need

    policy: Literal["fail", "skip"] = "skip" if on_bad_row == "skip" else "fail"
    judge_objects = make_judges(judges, model, judge_options, structured)  # what rate would run
    check_judge_models(judge_objects, judge_models)
    # the rows rate would send: a row without a response is a bad row for a judge that reads one
    dataset = load(data, layout=layout, column_map=column_map, id_column=id_column, on_bad_row=policy,
                   need_response=response_need(judge_objects), side="rejected" if side == "rejected" else "chosen")
    if limit is not None:
        del dataset.samples[limit:]  # as rate: a trial on the first rows
    result = CostEstimate(rows=len(dataset.samples), batch=batch)
    cache, result.cache_note = open_for_reading(cache_dir, use_cache)
    try:
        engine = Engine(cache, settings or EngineSettings())
        facts = _cache_facts(cache)
        counters: dict[str, tuple[Callable[[Messages], int], str]] = {}
        for judge in judge_objects:
            chosen = str(model_for(judge, model, judge_models))
            # ``local`` models get their cache identity from the server they start, which a dry
            # run does not start: their calls all count as to send, at price zero.
            pricing = _pricing(facts, chosen, api_base, batch, counters)
            result.counter = pricing.counter
            jr = JudgeRun(judge, ModelConfig(model=chosen, api_base=api_base))
            result.judges.append(estimate_judge(engine, jr, dataset.samples, facts, pricing))
    finally:
        cache.close()
    return result


def format_estimate(est: CostEstimate) -> str:
    """The estimate as text for the terminal."""
    rates = ", priced at batch rates (half)" if est.batch else ""
    lines = [f"dry run: {est.rows} rows; nothing was sent (tokens counted by {est.counter}){rates}"]
    if est.cache_note:
        lines.append(f"  {est.cache_note}")
    for j in est.judges:
        price = "no listed price" if not (j.price_in or j.price_out) else f"${j.cost:.4f}"
        lines.append(
            f"  {j.judge} on {j.model}: {j.cached_samples}/{j.samples} samples cached; "
            f"{j.calls} calls to send; "
            f"~{j.input_tokens:,} input + ~{j.output_tokens:,} output tokens; {price}"
        )
        lines.append(f"    input tokens: {j.input_basis}; output tokens: {j.output_basis}")
    unpriced = [j.judge for j in est.judges if j.calls and not (j.price_in or j.price_out)]
    if unpriced and len(unpriced) == sum(1 for j in est.judges if j.calls):
        money = "cost unknown (no listed price)"
    elif unpriced:
        money = f"~${est.cost:.4f} plus {', '.join(unpriced)} (no listed price)"
    else:
        money = f"~${est.cost:.4f}"
    lines.append(
        f"  total: {est.calls} calls, ~{est.input_tokens:,} input + ~{est.output_tokens:,} output tokens, {money}"
    )
    return "\n".join(lines)
