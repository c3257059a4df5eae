"""Row -> turns for each supported layout (Alpaca, ShareGPT, OpenAI messages) and column maps.

A converter is built once per file and applied to every row, so the per-row work is a few
dict lookups and isinstance checks (no pydantic: a cached re-run touches millions of rows).
Converters raise :class:`RowError` naming the field; the loader turns that into a BadRow.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from winnow.types import Role, Turn

LAYOUTS = ("alpaca", "sharegpt", "messages", "prompt", "ultrachat", "hh", "preference")
# what each map key names: Alpaca's three fields, the id, a conversation column (ShareGPT /
# messages), a prompt pool's text, UltraChat's list, an HH transcript, a preference pair's parts
MAP_KEYS = ("instruction", "input", "output", "id", "conversations", "messages", "prompt", "data", "transcript",
            "chosen", "rejected")

# Speaker names seen in ShareGPT dumps and chat exports, lower-cased.
ROLE_NAMES: dict[str, Role] = {
    "human": "user", "user": "user", "prompter": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bing": "assistant",
    "bard": "assistant", "model": "assistant", "claude": "assistant", "ai": "assistant",
    "bot": "assistant",
    "system": "system", "developer": "system",
    "tool": "tool", "function": "tool", "ipython": "tool", "observation": "tool",
}  # fmt: skip

DETECT_ROWS = 20  # rows looked at when guessing the layout of a file

Alpaca = tuple[str, str, str]
Converter = Callable[[dict[str, Any]], tuple[list[Turn] | None, Alpaca | None]]

MISSING: Any = object()


class RowError(Exception):
    """A row that cannot become a Sample; ``field`` is the (dotted) field at fault."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def parse_column_map(text: str) -> dict[str, str]:
    """Parse the CLI form ``instruction=question,output=answer`` into a dict."""
    mapping: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, column = part.partition("=")
        key, column = key.strip(), column.strip()
        if not sep or not key or not column:
            raise ValueError(f"bad column map entry {part!r}: expected KEY=COLUMN, e.g. instruction=question")
        mapping[key] = column
    check_column_map(mapping)
    return mapping


def check_column_map(mapping: Mapping[str, str]) -> None:
    unknown = sorted(set(mapping) - set(MAP_KEYS))
    if unknown:
        known = ", ".join(MAP_KEYS)
        raise ValueError(f"unknown column map key(s) {', '.join(unknown)}; expected some of {known}")
    for key, column in mapping.items():
        if not isinstance(column, str) or not column:
            raise ValueError(f"column map entry {key!r} must name a column, got {column!r}")
    if "conversations" in mapping and "messages" in mapping:
        raise ValueError("column map names both 'conversations' and 'messages'; give one")


def layout_from_map(mapping: Mapping[str, str]) -> str | None:
    """The layout a column map implies, or None when it only names the id column."""
    if "conversations" in mapping:
        return "sharegpt"
    if "messages" in mapping:
        return "messages"
    if "data" in mapping:
        return "ultrachat"
    if "transcript" in mapping:
        return "hh"
    if "chosen" in mapping or "rejected" in mapping:
        return "preference"
    if "prompt" in mapping:
        return "prompt"
    if {"instruction", "input", "output"} & set(mapping):
        return "alpaca"
    return None


def row_layout(row: Mapping[str, Any]) -> str | None:
    """The layout one row's keys and values look like, or None."""
    if "conversations" in row:
        return "sharegpt"
    if "messages" in row:
        return "messages"
    data = row.get("data")
    if isinstance(data, list) and data and all(isinstance(x, str) for x in data):
        return "ultrachat"
    if "chosen" in row and "rejected" in row:
        chosen = row["chosen"]
        if "prompt" not in row and isinstance(chosen, str) and "\n\nHuman:" in "\n\n" + chosen.lstrip("\n"):
            return "hh"
        return "preference"
    if "instruction" in row and "output" in row:
        return "alpaca"
    from winnow.data.shapes import prompt_column

    if prompt_column(row) is not None and not _has_response_column(row):
        return "prompt"
    return None


def _has_response_column(row: Mapping[str, Any]) -> bool:
    return any(str(k).lower() in ("output", "response", "answer", "completion") for k in row)


def detect_layout(rows: Iterable[Any]) -> str | None:
    """Guess the layout from the first object rows: the most common signature wins."""
    votes: Counter[str] = Counter()
    seen = 0
    for row in rows:
        if not isinstance(row, dict):
            continue
        layout = row_layout(row)
        if layout is not None:
            votes[layout] += 1
        seen += 1
        if seen >= DETECT_ROWS:
            break
    if votes["alpaca"] and votes["prompt"]:
        # Alpaca rows beside rows missing their output: a damaged Alpaca file (those rows are bad
        # rows), not a prompt pool; a pool is a file where no row has a response
        votes["alpaca"] += votes.pop("prompt")
    return votes.most_common(1)[0][0] if votes else None


def getter(path: str) -> Callable[[dict[str, Any]], Any]:
    """A lookup for a column name or a dotted path such as ``instances.0.input``.

    A key that literally contains dots (a CSV header ``a.b``) wins over the path reading.
    Returns ``MISSING`` when any step is absent.
    """
    if "." not in path:
        return lambda row: row.get(path, MISSING)
    steps = path.split(".")

    def get(row: dict[str, Any]) -> Any:
        if path in row:
            return row[path]
        value: Any = row
        for step in steps:
            if isinstance(value, dict):
                value = value.get(step, MISSING)
            elif isinstance(value, list) and step.isdigit():
                index = int(step)
                value = value[index] if index < len(value) else MISSING
            else:
                return MISSING
            if value is MISSING:
                return MISSING
        return value

    return get


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _string(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if value is MISSING:
        raise RowError(field, "missing field")
    raise RowError(field, f"expected a string, got {_type_name(value)}")


def alpaca_converter(instruction: str, input_: str, output: str) -> Converter:
    """Alpaca: user = instruction + ("\\n\\n" + input if input), assistant = output
    (``winnow.types.alpaca_turns``); only the (instruction, input, output) triple is kept."""
    get_i, get_in, get_o = getter(instruction), getter(input_), getter(output)

    def convert(row: dict[str, Any]) -> tuple[list[Turn] | None, Alpaca | None]:
        instr = _string(get_i(row), instruction)
        inp = get_in(row)
        if inp is MISSING or inp is None:  # `input` is optional in Alpaca files
            inp = ""
        elif not isinstance(inp, str):
            raise RowError(input_, f"expected a string, got {_type_name(inp)}")
        out = _string(get_o(row), output)
        if not instr.strip() and not inp.strip():  # the user turn would be blank
            raise RowError(instruction, "empty instruction")
        return None, (instr, inp, out)  # the Sample builds its turns when first asked (types.py)

    return convert


def _content(turn: dict[str, Any], field: str) -> str:
    """A turn's text; OpenAI content-part lists are joined when every part is text."""
    value = turn["value"] if "value" in turn else turn.get("content", MISSING)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = []
        for i, part in enumerate(value):
            is_text = isinstance(part, dict) and part.get("type") == "text"
            if not (is_text and isinstance(part.get("text"), str)):
                raise RowError(f"{field}.{i}", "only text content parts are supported")
            texts.append(part["text"])
        return "\n".join(texts)
    if value is MISSING:
        raise RowError(field, "missing field")
    raise RowError(field, f"expected a string, got {_type_name(value)}")


def _text_key(turn: dict[str, Any], role_key: str) -> str:
    """The key a turn's text is under; when absent, the one its speaker key implies (ShareGPT
    ``from`` goes with ``value``, OpenAI ``role`` with ``content``), so an error names the
    field the user has to add."""
    if "value" in turn:
        return "value"
    if "content" in turn:
        return "content"
    return "value" if role_key == "from" else "content"


def _tool_calls(calls: Any, field: str) -> str:
    """An assistant turn's tool calls as the text a judge reads: ``[tool call] name(arguments)``."""
    if not isinstance(calls, list):
        raise RowError(field, f"expected a list of tool calls, got {_type_name(calls)}")
    lines = []
    for i, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise RowError(f"{field}.{i}", "expected {\"function\": {\"name\": ..., \"arguments\": ...}}")
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            arguments = orjson.dumps(arguments).decode()
        lines.append(f"[tool call] {function['name']}({arguments})")
    return "\n".join(lines)


def _json_list(text: str, column: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise RowError(column, f"expected a list of turns; the text is not valid JSON: {exc}") from None


def conversation_converter(column: str, require_user: bool = True) -> Converter:
    """ShareGPT ``{from, value}`` or OpenAI ``{role, content}`` turns (either key pair works).

    ``require_user=False``: a list of assistant turns alone is fine (a preference pair's side,
    whose prompt is another column)."""
    get = getter(column)

    def convert(row: dict[str, Any]) -> tuple[list[Turn], Alpaca | None]:
        conv = get(row)
        if conv is MISSING:
            raise RowError(column, "missing field")
        if isinstance(conv, str) and conv.lstrip().startswith("["):
            conv = _json_list(conv, column)  # CSV keeps list columns as JSON text; the row stays as is
        if not isinstance(conv, list):
            raise RowError(column, f"expected a list of turns, got {_type_name(conv)}")
        if not conv:
            raise RowError(column, "empty conversation")
        turns: list[Turn] = []
        for i, turn in enumerate(conv):
            where = f"{column}.{i}"
            if not isinstance(turn, dict):
                raise RowError(where, f"expected an object, got {_type_name(turn)}")
            role_key = "from" if "from" in turn else "role"
            speaker = turn.get(role_key, MISSING)
            if speaker is MISSING:
                raise RowError(f"{where}.from", "missing field (expected 'from' or 'role')")
            role = ROLE_NAMES.get(speaker.lower()) if isinstance(speaker, str) else None
            if role is None:
                raise RowError(f"{where}.{role_key}", f"unknown speaker {speaker!r}")
            key = _text_key(turn, role_key)
            if role == "assistant" and turn.get(key) is None and turn.get("tool_calls"):
                turns.append(Turn(role, _tool_calls(turn["tool_calls"], f"{where}.tool_calls")))
                continue  # an assistant turn that only calls tools (OpenAI: content null)
            turns.append(Turn(role, _content(turn, f"{where}.{key}")))
        if require_user and not any(t.role == "user" and t.content.strip() for t in turns):
            raise RowError(column, "no user turn with text")
        return turns, None

    return convert


def make_converter(
    layout: str, mapping: Mapping[str, str], side: str = "chosen", first: Mapping[str, Any] | None = None
) -> Converter:
    """The converter for ``layout`` with column names taken from ``mapping`` where given.

    ``side``: which response of a preference pair or HH row (chosen / rejected).  ``first``: the
    first row, where a prompt pool's text column is looked up (prompt, instruction, question,
    text, query or input, any case).
    """
    from winnow.data import shapes

    if layout == "alpaca":
        return alpaca_converter(
            mapping.get("instruction", "instruction"),
            mapping.get("input", "input"),
            mapping.get("output", "output"),
        )
    if layout == "sharegpt":
        return conversation_converter(mapping.get("conversations", "conversations"))
    if layout == "messages":
        return conversation_converter(mapping.get("messages", "messages"))
    if layout == "prompt":
        column = mapping.get("prompt") or mapping.get("instruction")
        if column is None:
            column = shapes.prompt_column(first or {}) or "prompt"
        input_column = mapping.get("input")
        if input_column is None and column.lower() == "instruction" and first is not None and "input" in first:
            input_column = "input"  # Alpaca rows without their outputs
        return shapes.prompt_converter(column, input_column)
    if layout == "ultrachat":
        return shapes.ultrachat_converter(mapping.get("data", "data"))
    if side not in shapes.SIDES:
        raise ValueError(f"unknown side {side!r}; expected chosen or rejected")
    if layout == "hh":
        return shapes.hh_converter(mapping.get("transcript") or mapping.get(side, side))
    if layout == "preference":
        return shapes.preference_converter(mapping.get("prompt", "prompt"), mapping.get(side, side))
    raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
