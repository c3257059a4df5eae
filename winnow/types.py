"""Core value types shared by every layer of winnow.

This module imports nothing from winnow, so every other package may depend on it
(architecture.md rule 5: "all -> types").  Samples are plain slotted dataclasses rather
than pydantic models because a cached re-run touches millions of them and pydantic
validation would dominate the per-row cost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import orjson

Role = Literal["system", "user", "assistant", "tool"]


class Status(StrEnum):
    """Outcome of judging one row with one judge.

    ``judge_failed`` is never a score: selectors skip such rows (inspect_ai's "unscored").
    """

    OK = "ok"
    JUDGE_FAILED = "judge_failed"


@dataclass(slots=True, frozen=True)
class Turn:
    role: Role
    content: str


def alpaca_turns(instruction: str, input_text: str, output: str) -> list[Turn]:
    """The conversation of an Alpaca row: user = instruction (+ "\\n\\n" + input), assistant = output."""
    user = instruction + "\n\n" + input_text if input_text else instruction
    return [Turn("user", user), Turn("assistant", output)]


def content_id(turns: Sequence[Turn]) -> str:
    """``"h"`` + 16 hex chars of blake2b over the canonical JSON of the turns.

    Canonical JSON: ``[[role, content], ...]`` encoded by orjson (compact, UTF-8, no
    ``ensure_ascii``), which has exactly one encoding for a list of string pairs.  The hash
    covers the turns only, so the same conversation gets the same id whatever file or layout
    it came from, and annotation columns added by an earlier run never change it.
    """
    payload = orjson.dumps([[t.role, t.content] for t in turns])
    return "h" + hashlib.blake2b(payload, digest_size=8).hexdigest()


class Sample:
    """One instruction-tuning example, normalised from whatever layout the file used.

    ``row`` is the untouched original record: writers emit it back verbatim, so a file
    written without annotations reproduces its input.
    ``alpaca`` keeps ``(instruction, input, output)`` separately when the row was in Alpaca
    layout, because AlpaGasus' prompt shows the input under its own header (methods.md 1.2).

    Why a hand-written class: ``turns`` of an Alpaca row and a content-hash ``id`` are built
    on first use.  A cached AlpaGasus re-run reads neither, and building both for every row
    was about half of loading a file (~5 us a row); the loader still validates every field.
    """

    __slots__ = ("_id", "_turns", "alpaca", "index", "row")

    def __init__(
        self,
        id: str | None,
        turns: list[Turn] | None,
        row: dict[str, Any],
        index: int,
        alpaca: tuple[str, str, str] | None = None,
    ) -> None:
        if turns is None and alpaca is None:
            raise ValueError("a Sample needs its turns or its Alpaca (instruction, input, output)")
        self._id = id  # None: the content hash of the turns, computed when first asked for
        self._turns = turns  # None: built from ``alpaca`` when first asked for
        self.row = row
        self.index = index
        self.alpaca = alpaca

    @property
    def id(self) -> str:
        sample_id = self._id
        if sample_id is None:
            sample_id = self._id = content_id(self.turns)
        return sample_id

    @property
    def turns(self) -> list[Turn]:
        turns = self._turns
        if turns is None:
            assert self.alpaca is not None  # __init__ refuses a Sample with neither
            turns = self._turns = alpaca_turns(*self.alpaca)
        return turns

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sample):
            return NotImplemented
        return (self.id, self.turns, self.row, self.index, self.alpaca) == (
            other.id, other.turns, other.row, other.index, other.alpaca
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def __repr__(self) -> str:
        return f"Sample(id={self.id!r}, turns={self.turns!r}, row={self.row!r}, index={self.index!r})"

    def exchanges(self) -> list[tuple[str, str]]:
        """User turns paired with the assistant reply that follows (``""`` if none).

        DEITA and InsTag score/tag every user turn on its own (methods.md 2.1, 3.4).
        """
        pairs: list[tuple[str, str]] = []
        turns = self.turns
        for i, turn in enumerate(turns):
            if turn.role != "user":
                continue
            after = []
            for later in turns[i + 1 :]:
                if later.role in ("user", "system"):
                    break
                after.append(later)
            if len(after) == 1 and after[0].role == "assistant":
                reply = after[0].content
            elif any(t.role == "assistant" for t in after):  # tool calls and results, then the answer
                reply = "\n\n".join(f"[{t.role}] {t.content}" for t in after)
            else:
                reply = ""
            pairs.append((turn.content, reply))
        return pairs

    @property
    def has_response(self) -> bool:
        """Whether some user turn has an assistant reply (a prompt pool's rows have none)."""
        if self.alpaca is not None:
            return True
        return any(t.role == "assistant" for t in self.turns)

    @property
    def system(self) -> str:
        return "\n".join(t.content for t in self.turns if t.role == "system")


@dataclass(slots=True)
class BadRow:
    """A row the reader could not turn into a Sample; always reported, never dropped silently."""

    path: str
    index: int  # 0-based row index (position among records)
    line: int | None  # 1-based line number where the format has lines (JSONL, CSV)
    field: str | None
    message: str

    def describe(self) -> str:
        where = f"line {self.line}" if self.line is not None else f"row {self.index + 1}"
        what = f", field '{self.field}'" if self.field else ""
        return f"{self.path}: {where}{what}: {self.message}"


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class TokenLogprob:
    """One generated token with its alternatives, as OpenAI-compatible servers return them."""

    token: str
    logprob: float
    top: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class Reply:
    """What a transport hands back for one chat completion, independent of the transport."""

    text: str
    usage: Usage
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None
    model: str | None = None  # the model name the server reported
