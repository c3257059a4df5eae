"""Which rows have no response to judge, and the field to blame.

Why: a judge that reads the response (AlpaGasus, DEITA quality, a template showing ``output``)
sent an empty ``### Response:`` scores nothing real, yet the score looks like any other.  Alpaca
``"output": ""``, an empty CSV cell, a ShareGPT ``{"from": "gpt", "value": ""}`` or a
conversation that ends on an unanswered user turn are all rows without a response: for those
judges they are bad rows, named by file, row and field and handled per ``--on-bad-row``, just
as a whitespace-only instruction is.  Judges that read the user turns alone still get them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from winnow.data.layouts import RowError, getter
from winnow.types import Sample, Turn

__all__ = ["ENDS_UNANSWERED", "ResponseCheck", "response_check"]

ResponseCheck = Callable[[dict[str, Any], Sample], RowError | None]
EMPTY = "empty response (judges that read the response need one)"
ENDS_UNANSWERED = "no response: the conversation ends with a user turn that has no answer"


def response_check(layout: str, mapping: Mapping[str, str], side: str) -> ResponseCheck | None:
    """The check for ``layout`` (None for a prompt pool, whose rows have no response by design)."""
    if layout == "alpaca":
        return _alpaca_check(mapping.get("output", "output"))
    if layout in ("sharegpt", "messages", "ultrachat"):
        column = mapping.get({"sharegpt": "conversations"}.get(layout, layout), _DEFAULT[layout])
        return _turns_check(column, indexed=True)
    if layout == "hh":
        return _turns_check(mapping.get("transcript") or mapping.get(side, side), indexed=False)
    if layout == "preference":
        column = mapping.get(side, side)
        return _turns_check(column, indexed=True, list_only=True)
    return None


_DEFAULT = {"sharegpt": "conversations", "messages": "messages", "ultrachat": "data"}


def _alpaca_check(column: str) -> ResponseCheck:
    def check(row: dict[str, Any], sample: Sample) -> RowError | None:
        assert sample.alpaca is not None  # the alpaca converter always sets it
        return None if sample.alpaca[2].strip() else RowError(column, EMPTY)

    return check


def _turns_check(column: str, indexed: bool, list_only: bool = False) -> ResponseCheck:
    """Every assistant turn has text and the last user turn is answered.

    ``indexed``: the turns are the items of a list in ``column`` (the field names the turn, e.g.
    ``conversations.3.value``); ``list_only``: only when that column holds a list (a preference
    side given as a string is that string)."""
    get = getter(column)

    def check(row: dict[str, Any], sample: Sample) -> RowError | None:
        raw = get(row)
        items = raw if isinstance(raw, list) else None
        turns = sample.turns
        offset = len(turns) - len(items) if items is not None else 0  # a prompt put in front of the list
        for i, turn in enumerate(turns):
            if turn.role == "assistant" and not turn.content.strip():
                use_index = indexed and (items is not None or not list_only) and i >= offset
                where = _turn_field(column, i - offset, items) if use_index else column
                return RowError(where, EMPTY)
        if _last_spoken(turns) == "user":
            return RowError(column, ENDS_UNANSWERED)
        return None

    return check


def _last_spoken(turns: list[Turn]) -> str | None:
    """The role of the last turn that is not a system prompt."""
    return next((t.role for t in reversed(turns) if t.role != "system"), None)


def _turn_field(column: str, index: int, items: list[Any] | None) -> str:
    """``column.index`` plus the key holding the turn's text when the turn is an object."""
    turn = items[index] if items is not None and index < len(items) else None
    if isinstance(turn, dict):
        key = "value" if "value" in turn or "from" in turn else "content"
        return f"{column}.{index}.{key}"
    return f"{column}.{index}"
