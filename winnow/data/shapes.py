"""The dataset shapes beyond Alpaca / ShareGPT / messages: prompt pools, UltraChat, Anthropic HH
transcripts and preference pairs, with how each is recognised from its first rows.

Why they matter: InsTag tags queries and DEITA's complexity scorer reads only instructions
(methods.md 2, 3), so a pool of prompts with no responses yet is data worth judging; UltraChat,
HH-RLHF and DPO preference sets are among the most used instruction data and must be read as
they are published.  Every converter leaves the row untouched (writers emit it back verbatim),
so writing rows without annotations reproduces the input.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from winnow.data.layouts import MISSING, Converter, RowError, _type_name, conversation_converter, getter
from winnow.types import Role, Turn

__all__ = [
    "PROMPT_NAMES",
    "SIDES",
    "hh_converter",
    "preference_converter",
    "prompt_column",
    "prompt_converter",
    "ultrachat_converter",
]

# A prompt pool's text column, under any case, in this order of preference.
PROMPT_NAMES = ("prompt", "instruction", "question", "text", "query", "input")
SIDES = ("chosen", "rejected")
_HH_SPEAKER = re.compile(r"(?:^|\n\n)(Human|Assistant):[ ]?")


def prompt_column(row: Mapping[str, Any]) -> str | None:
    """The column of a prompt-only row: the first of PROMPT_NAMES present (any case) holding text."""
    lowered = {str(k).lower(): k for k in row}
    for name in PROMPT_NAMES:
        key = lowered.get(name)
        if key is not None and isinstance(row[key], str):
            return str(key)
    return None


def _text(value: Any, column: str, expected: str = "a string") -> str:
    """``value`` as text, or the row's error naming ``column``."""
    if value is MISSING:
        raise RowError(column, "missing field")
    if not isinstance(value, str):
        raise RowError(column, f"expected {expected}, got {_type_name(value)}")
    return value


def prompt_converter(column: str, input_column: str | None = None) -> Converter:
    """One user turn, no response: ``column`` (+ "\\n\\n" + ``input_column`` when it has text)."""
    get = getter(column)
    get_input = getter(input_column) if input_column else None

    def convert(row: dict[str, Any]) -> tuple[list[Turn] | None, None]:
        text = _text(get(row), column)
        if get_input is not None:
            extra = get_input(row)
            if isinstance(extra, str) and extra.strip():
                text = f"{text}\n\n{extra}"
            elif extra not in (MISSING, None, "") and not isinstance(extra, str):
                raise RowError(input_column, f"expected a string, got {_type_name(extra)}")
        if not text.strip():
            raise RowError(column, "empty prompt")
        return [Turn("user", text)], None

    return convert


def ultrachat_converter(column: str = "data") -> Converter:
    """UltraChat: ``{"data": [q1, a1, q2, a2, ...]}``, user and assistant alternating."""
    get = getter(column)

    def convert(row: dict[str, Any]) -> tuple[list[Turn] | None, None]:
        data = get(row)
        if data is MISSING:
            raise RowError(column, "missing field")
        if not isinstance(data, list) or not data:
            raise RowError(column, f"expected a non-empty list of strings, got {_type_name(data)}")
        turns = []
        for i, text in enumerate(data):
            if not isinstance(text, str):
                raise RowError(f"{column}.{i}", f"expected a string, got {_type_name(text)}")
            turns.append(Turn("user" if i % 2 == 0 else "assistant", text))
        if not turns[0].content.strip():
            raise RowError(f"{column}.0", "empty first user turn")
        return turns, None

    return convert


def hh_turns(text: str, field: str) -> list[Turn]:
    """An Anthropic HH transcript (``\\n\\nHuman: ...\\n\\nAssistant: ...``) as turns."""
    marks = list(_HH_SPEAKER.finditer(text))
    if not marks:
        raise RowError(field, "not an HH transcript: no '\\n\\nHuman:' / '\\n\\nAssistant:' turn")
    if text[: marks[0].start()].strip():
        raise RowError(field, "text before the first 'Human:' turn")
    turns = []
    for n, mark in enumerate(marks):
        end = marks[n + 1].start() if n + 1 < len(marks) else len(text)
        role: Role = "user" if mark.group(1) == "Human" else "assistant"
        turns.append(Turn(role, text[mark.end() : end].strip()))
    if not any(t.role == "user" and t.content for t in turns):
        raise RowError(field, "no Human turn with text")
    return turns


def hh_converter(column: str = "chosen") -> Converter:
    """Anthropic HH-RLHF: the transcript in ``column`` (``chosen`` by default, ``rejected`` for the
    other side)."""
    get = getter(column)

    def convert(row: dict[str, Any]) -> tuple[list[Turn] | None, None]:
        return hh_turns(_text(get(row), column, "a transcript string"), column), None

    return convert


def preference_converter(prompt: str = "prompt", side: str = "chosen") -> Converter:
    """Preference pairs: ``prompt`` plus the ``side`` response (``chosen`` or ``rejected``).

    The response is a string, or a message list (UltraFeedback binarized: the whole conversation,
    prompt included; a list with assistant turns only gets the prompt in front).
    """
    get_prompt, get_side = getter(prompt), getter(side)
    as_messages = conversation_converter(side, require_user=False)
    prompt_messages = conversation_converter(prompt, require_user=False)

    def convert(row: dict[str, Any]) -> tuple[list[Turn] | None, None]:
        response = get_side(row)
        if response is MISSING:
            raise RowError(side, "missing field")
        question = get_prompt(row)
        if isinstance(response, list):
            turns = list(as_messages(row)[0] or [])
            if turns and turns[0].role != "user" and isinstance(question, str) and question.strip():
                turns = [Turn("user", question), *turns]
            if not any(t.role == "user" and t.content.strip() for t in turns):
                raise RowError(prompt, "no user turn: neither in the message list nor in the prompt")
            return turns, None
        if not isinstance(response, str):
            raise RowError(side, f"expected a string or a list of messages, got {_type_name(response)}")
        if question is MISSING:
            raise RowError(prompt, "missing field")
        if isinstance(question, list):  # the prompt as messages (TRL's conversational format)
            return [*(prompt_messages(row)[0] or []), Turn("assistant", response)], None
        if not isinstance(question, str):
            raise RowError(prompt, f"expected a string, got {_type_name(question)}")
        if not question.strip():
            raise RowError(prompt, "empty prompt")
        return [Turn("user", question), Turn("assistant", response)], None

    return convert
