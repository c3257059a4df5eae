"""The typer application and the helpers every command shares."""

from __future__ import annotations

import shlex
import sys
from typing import Any, NoReturn

import typer

app = typer.Typer(
    name="winnow",
    help="Rate, tag and select instruction-tuning data with LLM judges.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def err(message: str) -> None:
    typer.echo(message, err=True)


def fail(message: str, code: int = 2) -> NoReturn:
    err(f"error: {message}")
    raise typer.Exit(code)


def parse_pairs(items: list[str] | None, what: str) -> dict[str, str]:
    """``a=b,c=d`` or repeated ``a=b`` options into a dict."""
    out: dict[str, str] = {}
    for item in items or []:
        for pair in item.split(","):
            if not pair.strip():
                continue
            key, sep, value = pair.partition("=")
            if not sep or not key.strip() or not value.strip():
                fail(f"{what}: expected KEY=VALUE, got '{pair}'")
            out[key.strip()] = value.strip()
    return out


def coerce(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def resume_command() -> str:
    """The command line that was run, with any --api-key value hidden."""
    args = list(sys.argv[1:])
    for i, arg in enumerate(args):
        if arg == "--api-key" and i + 1 < len(args):
            args[i + 1] = "$API_KEY"
        elif arg.startswith("--api-key="):
            args[i] = "--api-key=$API_KEY"
    return "winnow " + shlex.join(args)
