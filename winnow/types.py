"""Core value types shared by every layer of winnow.

This module imports nothing from winnow, so every other package may depend on it
(architecture.md rule 5: "all -> types").  Samples are plain slotted dataclasses rather
than pydantic models because a cached re-run touches millions of them and pydantic
validation would dominate the per-row cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]


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


@dataclass(slots=True)
class Sample:
    """One instruction-tuning example, normalised from whatever layout the file used.

    ``row`` is the untouched original record: writers emit it back verbatim, so a file
    written without annotations reproduces its input.
    ``alpaca`` keeps ``(instruction, input, output)`` separately when the row was in Alpaca
    layout, because AlpaGasus' prompt shows the input under its own header (methods.md 1.2).
    """

    id: str
    turns: list[Turn]
    row: dict[str, Any]
    index: int
    alpaca: tuple[str, str, str] | None = None

    def exchanges(self) -> list[tuple[str, str]]:
        """User turns paired with the assistant reply that follows (``""`` if none).

        DEITA and InsTag score/tag every user turn on its own (methods.md 2.1, 3.4).
        """
        pairs: list[tuple[str, str]] = []
        turns = self.turns
        for i, turn in enumerate(turns):
            if turn.role != "user":
                continue
            reply = ""
            if i + 1 < len(turns) and turns[i + 1].role == "assistant":
                reply = turns[i + 1].content
            pairs.append((turn.content, reply))
        return pairs

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
