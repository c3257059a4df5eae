"""The typer application and the helpers every command shares."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


LAYOUT_HELP = "alpaca, sharegpt, messages, prompt, ultrachat, hh or preference (default: detect; see winnow inspect)."


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


_KEY_PLACEHOLDER = "\0API_KEY\0"  # stands in for the key until quoting is done


def resume_command() -> str:
    """The command line that was run, ready to paste: the --api-key value becomes ``"$API_KEY"``
    (double quotes, so the shell expands it; shlex would single-quote it into the literal text)."""
    args = list(sys.argv[1:])
    for i, arg in enumerate(args):
        if arg == "--api-key" and i + 1 < len(args):
            args[i + 1] = _KEY_PLACEHOLDER
        elif arg.startswith("--api-key="):
            args[i] = "--api-key=" + _KEY_PLACEHOLDER
    quoted = shlex.join(args).replace(shlex.quote(_KEY_PLACEHOLDER), '"$API_KEY"')
    return "winnow " + quoted.replace(shlex.quote("--api-key=" + _KEY_PLACEHOLDER), '--api-key="$API_KEY"')


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can fix into one clear line and an exit code, never a traceback.

    2: bad input or setup (nothing was sent); 1: the model refused every request, nothing answers
    at the server's address, or the local server died mid-run; 130: interrupted (everything
    finished is cached, and the resume command is printed).
    """
    from winnow.api import PreflightError
    from winnow.cache import CacheError
    from winnow.data import DataError
    from winnow.engine import FatalRunError, Interrupted
    from winnow.local.files import LocalModelError, LocalServerDied
    from winnow.prompts import TemplateProblem

    try:
        yield
    except LocalServerDied as exc:
        fail(f"{exc}\n  every judgment finished before that is cached: re-run the same command to go on", code=1)
    except DataError as exc:
        if not exc.bad_rows:  # a file-level problem (layout, format): its message says what to do
            fail(str(exc))
        fail(f"{exc}\n  hint: fix the row, or pass --on-bad-row skip to skip and report bad rows; "
             "`winnow inspect FILE` shows how winnow reads the file")
    except (PreflightError, CacheError, TemplateProblem, FileNotFoundError, ValueError, LocalModelError) as exc:
        fail(str(exc))  # UnknownJudge and PipelineError are ValueErrors too
    except FatalRunError as exc:
        fail(str(exc), code=1)
    except Interrupted as exc:
        if "--no-cache" in sys.argv:
            why = str(exc).split(" (", 1)[0]  # not its "(N judgments cached ...)": nothing was
            err(f"\n{why}: with --no-cache nothing was kept; the same command starts again from the first row")
        else:
            err(f"\n{exc}: every finished judgment is cached. Resume with:\n  {resume_command()}")
        raise typer.Exit(130) from None
