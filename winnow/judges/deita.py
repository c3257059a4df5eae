"""DEITA complexity and quality judges (methods.md section 3), and the combined DEITA score.

Every user turn is scored on its own, without history (methods.md 3.4, P-D3), in one of three
modes (``mode`` kwarg):

- ``direct`` (default): one call per turn asks a chat model for a 1-6 score; the score is the
  expectation over the digit log-probs when the reply has them (``deita_direct``).
- ``evol``: EVOL COMPLEXITY / EVOL QUALITY (methods.md 3.2, 3.3): M evolutions in sequence,
  then one rank-and-score call over the M + 1 variants; the original's score is the turn's score
  (``deita_evol``).
- ``scorer``: a trained DEITA scorer behind an OpenAI-compatible endpoint, with the byte-exact
  scorer templates (``deita_scorer``).

Columns: ``<name>_scores`` is DEITA's own per-turn list (``complexity_scores`` /
``quality_scores``); ``<name>_score`` is the mean over turns, for display and thresholds only
(for single-turn samples it is the score itself); ``<name>_method`` says how the scores were
read (logprobs / parsed / mixed / evol / scorer / fallback).  The combined DEITA score
(sum over turns of c_t * q_t, methods.md 3.5) needs both judges, so it is a post-step:
``combine_deita``.

Out-of-range scores ("7", "0") are a ParseError: the engine re-asks, then records judge_failed.
They are never clamped, since a clamped 7 is indistinguishable from a real 6.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from winnow.judges.base import Ask, CallSpec, Judge, Verdict, combine_fingerprint
from winnow.judges.deita_direct import DIRECT_SCHEMA, parse_direct, parse_direct_json
from winnow.judges.deita_evol import COMPLEXITY_OPS, QUALITY_OPS, choose_op, parse_evolution, parse_rank
from winnow.judges.deita_scorer import complexity_prompt, parse_scorer, quality_prompt
from winnow.prompts import builtin_template
from winnow.types import Reply, Sample, Status

__all__ = ["EVOL_LABELS", "MODES", "DeitaComplexityJudge", "DeitaQualityJudge", "combine_deita"]

MODES = ("direct", "evol", "scorer")
EVOL_LABELS = "evol_labels"  # a verdict value (not a column): the chain's (variant, score) pairs
# Frozen: once a parser version inside the key; parser versions now live in the records
# (winnow.judges.base.PARSER_VERSION, ``winnow reparse``).  Kept so existing keys hold.
KEY_SALT = "deita-parse-1"
TOP_LOGPROBS = 20


class _DeitaJudge(Judge):
    kind = ""  # "complexity" or "quality"
    columns: tuple[str, ...] = ("score", "scores", "method")

    def __init__(
        self, mode: str = "direct", evolutions: int = 5, scorer_fallback: float | None = None,
        structured: bool = False,
    ) -> None:
        super().__init__()
        self.structured = bool(structured)  # direct mode only: {"score": digit} under a JSON schema
        if mode not in MODES:
            raise ValueError(f"{self.name}: unknown mode '{mode}': use one of {', '.join(MODES)}")
        if int(evolutions) < 1:
            raise ValueError(f"{self.name}: evolutions must be at least 1, got {evolutions}")
        if scorer_fallback is not None and not 1.0 <= float(scorer_fallback) <= 6.0:
            raise ValueError(f"{self.name}: scorer_fallback must be within 1-6, got {scorer_fallback}")
        self.mode = mode
        if mode == "evol":
            # methods.md 3.1-3.3: evol ranking makes training labels for a scorer, not a per-row
            # score (the seed sits at the bottom of its own chain by construction), so the row
            # gets the seed's rank label under a name that says so, and no <name>_score that a
            # selector or combine_deita would read; the labels table is what evol is for.
            self.columns = ("evol_seed_scores", "method")
        self.evolutions = int(evolutions)
        self.scorer_fallback = None if scorer_fallback is None else float(scorer_fallback)
        self.fallbacks = 0  # turns scored with scorer_fallback in this process (pitfall P-D8)
        self.direct_template = builtin_template(f"deita_{self.kind}.jinja")
        self.evol_template = builtin_template(f"deita_evol_{self.kind}.jinja")
        self.rank_template = builtin_template(f"deita_rank_{self.kind}.jinja")
        self.ops = COMPLEXITY_OPS if self.kind == "complexity" else QUALITY_OPS

    @property
    def fingerprint(self) -> str:
        parts: list[Any] = [self.name, self.mode, KEY_SALT]
        if self.mode == "direct":
            parts += [self.direct_template.hash, self.structured]
        elif self.mode == "evol":
            parts += [self.evol_template.hash, self.rank_template.hash, self.evolutions, list(self.ops)]
        # scorer: the literal templates are in the rendered messages, which the key covers;
        # the fallback is applied after the cached judgment, so it is no key part.
        return combine_fingerprint(*parts)

    # ------------------------------------------------------------------ call specs
    def direct_spec(self, turn: int, query: str, response: str) -> CallSpec:
        return CallSpec(
            messages=self.direct_template.render_messages(query=query, response=response, structured=self.structured),
            parse=parse_direct_json if self.structured else parse_direct,
            purpose=f"turn{turn}",
            schema=DIRECT_SCHEMA if self.structured else None,
            top_logprobs=TOP_LOGPROBS,
            params={"max_tokens": 16},
            format_hint=(
                'a JSON object {"score": <digit 1-6>}' if self.structured else "the score as a single digit from 1 to 6"
            ),
        )

    def scorer_spec(self, turn: int, query: str, response: str) -> CallSpec:
        text = complexity_prompt(query) if self.kind == "complexity" else quality_prompt(query, response)
        return CallSpec(
            messages=[{"role": "user", "content": text}],
            parse=parse_scorer,
            purpose=f"turn{turn}",
            top_logprobs=TOP_LOGPROBS,
            params={"max_tokens": 4},
        )

    def evol_spec(self, turn: int, step: int, query: str, seed: str, current: str) -> CallSpec:
        op = choose_op(self.ops, seed, step)
        if self.kind == "complexity":
            messages = self.evol_template.render_messages(prompt=current, operation=op)
        else:
            messages = self.evol_template.render_messages(prompt=query, response=current, operation=op)
        return CallSpec(
            messages=messages,
            parse=parse_evolution,
            purpose=_purpose(turn, f"evol{step}"),
            params={"max_tokens": 1024 if self.kind == "complexity" else 2048},
            format_hint=f"the rewritten {'prompt' if self.kind == 'complexity' else 'response'} only",
        )

    def rank_spec(self, turn: int, query: str, variants: list[str]) -> CallSpec:
        n = len(variants)

        def parse(reply: Reply) -> dict[str, Any]:
            return parse_rank(reply.text, n)

        return CallSpec(
            messages=self.rank_template.render_messages(query=query, items=variants),
            parse=parse,
            purpose=_purpose(turn, "rank"),
            params={"max_tokens": 16 * n + 32},
            format_hint=f"one line '[k] Score: <1-6>' for each k from 1 to {n}",
        )

    def sources(self) -> list[tuple[str, str]]:
        """(label, source) of what this mode sends; scorer literals shown with repr() so the
        spaces that must match byte for byte are visible."""
        if self.mode == "direct":
            return [(self.direct_template.name, self.direct_template.source)]
        if self.mode == "evol":
            ops = "\n".join(f"  op {i + 1}: {op}" for i, op in enumerate(self.ops))
            return [(self.evol_template.name, self.evol_template.source),
                    (self.rank_template.name, self.rank_template.source),
                    (f"evolution operations (M = {self.evolutions})", ops)]
        literal = complexity_prompt("{instruction}") if self.kind == "complexity" else quality_prompt(
            "{instruction}", "{output}")
        return [("DEITA scorer input (Python repr)", repr(literal))]

    def output_schema(self) -> str:
        return f"one {self.kind} score from 1 to 6 per user turn (mode {self.mode})"

    def preview(self, sample: Sample) -> list[tuple[str, list[dict[str, str]]]]:
        """The first call(s) this judge would send for ``sample`` (for ``winnow judges show``)."""
        out = []
        for t, (query, response) in enumerate(sample.exchanges()):
            if self.mode == "direct":
                spec = self.direct_spec(t, query, response)
            elif self.mode == "scorer":
                spec = self.scorer_spec(t, query, response)
            else:
                seed = query if self.kind == "complexity" else response
                spec = self.evol_spec(t, 1, query, seed, seed)
            out.append((spec.purpose, spec.messages))
        return out

    # ------------------------------------------------------------------ judging
    async def _score_turn(
        self, turn: int, query: str, response: str, ask: Ask, keys: list[str], labels: list[dict[str, Any]]
    ) -> tuple[float | None, str, str | None]:
        """(score, method, error) for one turn.  Calls are awaited one after the other: the
        engine's cache-first pass drives this coroutine by hand, one cache lookup at a time.
        In evol mode the turn's M + 1 (variant, score) labels are appended to ``labels``."""
        if self.mode == "evol":
            seed = query if self.kind == "complexity" else response
            variants = [seed]
            for step in range(1, self.evolutions + 1):
                answer = await ask(self.evol_spec(turn, step, query, seed, variants[-1]))
                keys.append(answer.key)
                if not answer.ok or answer.parsed is None:
                    return None, "evol", f"evolution {step}: {answer.error or 'unparseable reply'}"
                variants.append(str(answer.parsed["text"]))
            answer = await ask(self.rank_spec(turn, query, variants))
            keys.append(answer.key)
            if not answer.ok or answer.parsed is None:
                return None, "evol", f"rank: {answer.error or 'unparseable reply'}"
            scores = [float(s) for s in answer.parsed["scores"]]
            for step, (text, score) in enumerate(zip(variants, scores, strict=True)):
                labels.append({
                    "turn": turn, "step": step, "operation": choose_op(self.ops, seed, step) if step else None,
                    "instruction": text if self.kind == "complexity" else query,
                    "response": None if self.kind == "complexity" else text, "score": score,
                })
            return scores[0], "evol", None
        spec = self.direct_spec(turn, query, response) if self.mode == "direct" else self.scorer_spec(
            turn, query, response
        )
        answer = await ask(spec)
        keys.append(answer.key)
        if not answer.ok or answer.parsed is None:
            return None, self.mode, answer.error or "unparseable reply"
        parsed = answer.parsed
        if parsed.get("score") is None:  # scorer mode: no digit log-probs
            if self.scorer_fallback is None:
                return None, "missing", f"{parsed.get('reason')} (pass scorer_fallback=3 to use DEITA's 3.0)"
            self.fallbacks += 1
            return self.scorer_fallback, "fallback", None
        return float(parsed["score"]), str(parsed.get("method", self.mode)), None

    async def judge(self, sample: Sample, ask: Ask) -> Verdict:
        exchanges = sample.exchanges()
        if not exchanges:
            return self.failed("the sample has no user turn to score")
        scores: list[float] = []
        methods: list[str] = []
        keys: list[str] = []
        labels: list[dict[str, Any]] = []
        for t, (query, response) in enumerate(exchanges):
            score, method, error = await self._score_turn(t, query, response, ask, keys, labels)
            if score is None:
                return self.failed(f"turn {t}: {error}", keys)
            scores.append(score)
            methods.append(method)
        values: dict[str, Any]
        if self.mode == "evol":
            values = {"evol_seed_scores": scores, "method": "evol", EVOL_LABELS: labels}
        else:
            values = {"score": sum(scores) / len(scores), "scores": scores, "method": _summary(methods)}
        return Verdict(Status.OK, values, None, keys)


def _purpose(turn: int, step: str) -> str:
    return step if turn == 0 else f"turn{turn}.{step}"


def _summary(methods: list[str]) -> str:
    distinct = set(methods)
    if "fallback" in distinct:
        return "fallback"
    if len(distinct) == 1:
        return methods[0]
    return "mixed"


class DeitaComplexityJudge(_DeitaJudge):
    name = "deita_complexity"
    kind = "complexity"
    needs_response = False  # scores the user's queries (methods.md 3.2, 3.4)
    description = "DEITA complexity of each user query, 1-6 (direct logprob score, EVOL rank, or a DEITA scorer)."


class DeitaQualityJudge(_DeitaJudge):
    name = "deita_quality"
    kind = "quality"
    scores_every_turn = True  # an unanswered last user turn is scored with an empty response (methods.md 3.4)
    description = "DEITA quality of each response to its query, 1-6 (direct logprob score, EVOL rank, or a scorer)."


def deita_score(complexity: Iterable[float], quality: Iterable[float]) -> float:
    """s = sum over turns of c_t * q_t (methods.md 3.5, P-D3): not (sum c)(sum q), not a mean."""
    return float(sum(c * q for c, q in zip(complexity, quality, strict=True)))


def combine_deita(rows: list[dict[str, Any]], prefix: str = "") -> list[dict[str, Any]]:
    """Add ``<prefix>deita_score`` to rows judged by both DEITA judges (in place; returns ``rows``).

    A row gets the sum of per-turn products when both per-turn lists are present, of equal
    length, and both statuses are ok; otherwise ``None`` (a failed judgment is never a score).
    Rows are left untouched when neither row has both judges' columns (one judge did not run).
    ``prefix``: ``chosen_`` / ``rejected_`` for the two sides of ``rate --side both``.
    """
    c_col, q_col = f"{prefix}deita_complexity_scores", f"{prefix}deita_quality_scores"
    if not any(c_col in row and q_col in row for row in rows):
        return rows
    for row in rows:
        c, q = row.get(c_col), row.get(q_col)
        ok = (row.get(f"{prefix}deita_complexity_status") == "ok"
              and row.get(f"{prefix}deita_quality_status") == "ok")
        if ok and isinstance(c, list) and isinstance(q, list) and c and len(c) == len(q):
            row[f"{prefix}deita_score"] = deita_score(c, q)
        else:
            row[f"{prefix}deita_score"] = None
    return rows
