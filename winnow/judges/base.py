"""The judge contract: a template, an output schema and a parser, side by side.

A judge never talks to a model itself.  It describes calls (``CallSpec``) and awaits the
engine's ``ask`` for each; the engine owns caching, retries, re-asks and accounting.  That
keeps judges pure enough to re-parse old replies and to run fully from the cache without
an event loop (see ``winnow.engine.runner``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from winnow.types import Reply, Sample, Status

# How replies are read (the score ladder, tag and JSON repair).  Bump it whenever any judge reads
# a reply differently.  Recorded in every judgment record, never in the cache key: a parser fix
# must not throw away judgments already paid for; ``winnow reparse`` re-reads their stored
# replies instead, and ``rate`` says when cached judgments were read by an older parser.
# Version 1: records without the field (winnow 0.1).  Version 2: winnow.judges.scores.  Version 3:
# JSON judgments read strictly (true and NaN are no scores; two different JSON objects in a reply
# are ambiguous; user judges' schemas enforced: score_range, items, additionalProperties).
PARSER_VERSION = 3


class ParseError(ValueError):
    """The reply came back but does not contain what the judge asked for."""


Parser = Callable[[Reply], dict[str, Any]]


@dataclass(slots=True)
class CallSpec:
    """One request a judge wants answered.

    ``purpose`` distinguishes calls of one sample (``turn0``, ``evol3``, ``rank``); it is
    recorded for audit but is *not* part of the cache key: the same rendered prompt is the
    same judgment whichever sample or step asked for it.
    """

    messages: list[dict[str, str]]
    parse: Parser
    purpose: str = "main"
    schema: dict[str, Any] | None = None  # JSON schema requested as structured output
    top_logprobs: int | None = None
    params: dict[str, Any] = field(default_factory=dict)  # overrides of the judge's params
    format_hint: str = ""  # shown to the model in a re-ask


class Answer:
    """What ``ask`` returns: the cached judgment record, viewed through a few accessors.

    A cache hit in the cache-first pass carries only the fields the accessors read (the cache's
    ``SLIM_FIELDS``); ``record`` fetches the whole record from ``source`` the first time a
    judge asks for it, so a judge that reads the raw reply or the log-probs still gets them.
    """

    __slots__ = ("_record", "_source", "cached")

    def __init__(self, record: dict[str, Any], cached: bool, source: Any = None) -> None:
        self._record = record
        self.cached = cached
        self._source = source  # a JudgmentCache holding the whole record, or None: it is whole

    @property
    def record(self) -> dict[str, Any]:
        if self._source is not None:
            whole = self._source.get(self.key)
            self._source = None
            if isinstance(whole, dict):
                self._record = whole
        return self._record

    @property
    def ok(self) -> bool:
        return self._record.get("status") == Status.OK

    @property
    def parsed(self) -> dict[str, Any] | None:
        value = self._record.get("parsed")
        return value if isinstance(value, dict) else None

    @property
    def error(self) -> str | None:
        return self._record.get("error")

    @property
    def key(self) -> str:
        return str(self._record.get("key"))

    def __repr__(self) -> str:
        return f"Answer(key={self.key!r}, ok={self.ok}, cached={self.cached})"


Ask = Callable[[CallSpec], Awaitable[Answer]]


class RequestFailed(Exception):
    """No reply after every retry.  Not a judgment: nothing is cached, a re-run retries.

    ``reason`` heads the row's error (and the summary's count): ``request failed`` after the
    retries, ``rejected by the server`` for a row the server refused (see ``Sender``).
    """

    def __init__(self, message: str, reason: str = "request failed") -> None:
        super().__init__(message)
        self.reason = reason


def response_need(judges: Sequence[Judge]) -> bool | str:
    """What ``winnow.data.load(need_response=...)`` must check for these judges: nothing (False),
    every response (True), or only the assistant turns present (``"turns"``: every judge that
    reads responses scores turn by turn, and takes an unanswered last turn as it is)."""
    needy = [judge for judge in judges if judge.needs_response]
    if not needy:
        return False
    return "turns" if all(judge.scores_every_turn for judge in needy) else True


@dataclass(slots=True)
class Verdict:
    """A judge's result for one sample: flat columns plus a status and reason."""

    status: Status
    values: dict[str, Any]
    reason: str | None = None
    keys: list[str] = field(default_factory=list)


class Judge(ABC):
    """Base class of built-in and user judges.

    Subclasses set ``name``, ``description``, ``columns`` (value columns, written as
    ``<name>_<column>``), ``params`` (sampling defaults, temperature 0 per methods.md P-A4)
    and implement ``judge``.  ``fingerprint`` is the judge part of the cache key: it must
    change whenever what the judge sends or how its reply is read changes.
    """

    name: str = ""
    description: str = ""
    columns: tuple[str, ...] = ()
    # What the judge reads: user turns alone (False: InsTag, DEITA complexity, methods.md 2, 3),
    # or the response too (True).  A judge that needs a response is refused before any request
    # on rows that have none (a prompt pool), naming what it needs (api.check_inputs).
    needs_response: bool = True
    # A judge that scores every turn of a conversation, where one that ends on a user turn has
    # that turn scored with an empty response (DEITA quality, methods.md 3.4): for it such a row
    # is not missing its response (``response_need``).
    scores_every_turn: bool = False
    params: dict[str, Any]

    def __init__(self) -> None:
        self.params = {"temperature": 0.0, "max_tokens": 512}

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """Hash of templates and options; part of every cache key this judge produces."""

    @abstractmethod
    async def judge(self, sample: Sample, ask: Ask) -> Verdict:
        """Ask what is needed for ``sample`` and fold the answers into a Verdict."""

    def empty_values(self) -> dict[str, Any]:
        return dict.fromkeys(self.columns)

    def failed(self, reason: str, keys: list[str] | None = None) -> Verdict:
        return Verdict(Status.JUDGE_FAILED, self.empty_values(), reason, keys or [])

    def output_columns(self) -> list[str]:
        """Every column this judge adds to a row, in order."""
        return [f"{self.name}_{c}" for c in self.columns] + [f"{self.name}_status", f"{self.name}_error"]

    def flatten(self, verdict: Verdict) -> dict[str, Any]:
        """The verdict as this judge's output columns (``output_columns`` order)."""
        out: dict[str, Any] = {}
        self.flatten_into(out, verdict)
        return out

    def flatten_into(self, row: dict[str, Any], verdict: Verdict) -> None:
        """Write the verdict's columns into ``row``: once per row and judge of every output,
        so the column names are built once per judge, not per row."""
        names = self.__dict__.get("_flat_names")
        if names is None or names[0] != (self.name, self.columns):
            prefix = self.name + "_"
            names = self.__dict__["_flat_names"] = (
                (self.name, self.columns), [(c, prefix + c) for c in self.columns], prefix + "status", prefix + "error"
            )
        _, pairs, status, error = names
        values = verdict.values
        for column, name in pairs:
            row[name] = values.get(column)
        row[status] = str(verdict.status)
        row[error] = verdict.reason


class SingleCallJudge(Judge):
    """A judge that asks one question per sample: ``plan`` the call, ``conclude`` from its answer.

    Why a shape of its own: the engine's cache-first pass calls the two halves directly, with
    no coroutine per row (driving one coroutine per row was a third of judging a cached
    re-run).  ``judge`` is the same two halves around ``ask``, so both paths agree; a subclass
    that overrides ``judge`` itself is always run through its coroutine.  A judge that needs
    several calls for some samples only (InsTag: one per user turn) returns None from ``plan``
    for those and asks in ``judge_several``.
    """

    @abstractmethod
    def plan(self, sample: Sample) -> CallSpec | Verdict | None:
        """The one call for ``sample``; a Verdict when no call can be made (e.g. a template
        that needs a column this row lacks); None when it takes several (``judge_several``)."""

    async def judge_several(self, sample: Sample, ask: Ask) -> Verdict:
        """The verdict for a sample ``plan`` returned None for."""
        raise NotImplementedError(f"{type(self).__name__}.plan returned None but judge_several is not written")

    def conclude(self, sample: Sample, answer: Answer) -> Verdict:
        """The verdict from the call's answer: ``values`` of a parsed reply, else judge_failed."""
        parsed = answer.parsed
        if parsed is None or not answer.ok:
            return self.failed(answer.error or "unparseable reply", [answer.key])
        return Verdict(Status.OK, self.values(parsed), None, [answer.key])

    def values(self, parsed: dict[str, Any]) -> dict[str, Any]:
        """The verdict's values from the parsed reply (a copy: the answer may be shared)."""
        return dict(parsed)

    async def judge(self, sample: Sample, ask: Ask) -> Verdict:
        spec = self.plan(sample)
        if spec is None:
            return await self.judge_several(sample, ask)
        if isinstance(spec, Verdict):
            return spec
        return self.conclude(sample, await ask(spec))

    @classmethod
    def plans_directly(cls) -> bool:
        """True unless a subclass replaced ``judge`` (then only its coroutine is trusted)."""
        return cls.judge is SingleCallJudge.judge


def combine_fingerprint(*parts: Any) -> str:
    import hashlib

    import orjson

    blob = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(blob, digest_size=8).hexdigest()
