"""The typer application and the helpers every command shares."""

from __future__ import annotations

import math
import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
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


def check_layout(value: str | None) -> str | None:
    """``--layout``'s callback, shared by every command that takes it: an unknown layout is refused
    when the command line is read, whether or not the command would read a file with it (``judges
    show`` without ``--data`` used to accept any word silently; ``report`` raised a traceback)."""
    if value is None:
        return None
    from winnow.data import LAYOUTS

    if value not in LAYOUTS:
        fail(f"--layout {value}: unknown layout; use one of {', '.join(LAYOUTS)}")
    return value


def layout_option() -> Any:
    """The ``--layout`` option every command declares the same way (help and check)."""
    return typer.Option(None, "--layout", help=LAYOUT_HELP, callback=check_layout)


def finite(option: str) -> Any:
    """A callback refusing NaN and infinities for a float option: ``--threshold nan`` compares
    false with every score, so it would silently select (or agree on) nothing."""
    def check(value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            fail(f"{option} {value}: give a finite number")
        return value

    return check


def check_output(path: Path, *, inputs: Sequence[Path | None] = (), rows: bool = False,
                 option: str = "-o") -> None:
    """Refuse, before any work, an output the command could not write or should not write.

    Every command that writes a file calls this, so they all behave alike: the output's folder
    must exist (a missing folder is refused, never created, as ``rate`` always did: a typo in a
    folder name must not silently make a new tree); a folder, a read-only file or a read-only
    folder is refused; and ``inputs`` (the files the command reads) must not be the output, which
    would silently replace the input with the result.  ``rows``: a data file, whose suffix must
    name a format winnow writes (``winnow.api.preflight_output``, which rate runs too).  Exit 2.
    """
    from winnow.data.writers import OutputError, check_writable

    try:
        check_writable(path)
        if rows:
            from winnow.api import PreflightError, preflight_output
            from winnow.data import DataError

            try:
                preflight_output(path)
            except (PreflightError, DataError) as exc:
                fail(str(exc))
    except OutputError as exc:
        fail(f"{option}: {exc}" if option != "-o" else str(exc))
    target = path.resolve()
    for source in inputs:
        if source is not None and source.exists() and source.resolve() == target:
            fail(f"{option} {path} is the input file {source}: writing it would replace the input; "
                 "name another output")


def _bad_row_hint(flag: bool | str) -> str:
    """What to do about a bad row, in the terms of the command that met it: only a command that
    has ``--on-bad-row`` (``flag``) is told to pass it (``inspect`` has no such option); a
    pipeline (``flag="pipeline"``) is told about its file's ``on_bad_row`` key."""
    if flag == "pipeline":
        return ("hint: fix the row, or set `on_bad_row: skip` in the pipeline file to skip and report bad "
                "rows; `winnow inspect FILE` shows how winnow reads the file")
    if flag:
        return ("hint: fix the row, or pass --on-bad-row skip to skip and report bad rows; "
                "`winnow inspect FILE` shows how winnow reads the file")
    return "hint: fix the row; `winnow inspect FILE` shows how winnow reads the file"


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
def user_errors(on_bad_row: bool | str = True) -> Iterator[None]:
    """Turn the errors a user can fix into one clear line and an exit code, never a traceback.

    ``on_bad_row``: the command has ``--on-bad-row``, so a bad row's hint may suggest it; a
    command without the option passes False (a hint must name only flags the user can pass).

    2: bad input or setup (nothing was sent), an output that cannot be written, missing or
    refused credentials; 1: the model refused every request, nothing answers at the server's
    address, an embedding request failed, or the local server died mid-run; 130: interrupted (everything
    finished is cached, and the resume command is printed).
    """
    from winnow.api import PreflightError
    from winnow.cache import CacheError
    from winnow.data import DataError
    from winnow.data.writers import OutputError
    from winnow.engine import FatalRunError, Interrupted
    from winnow.engine.transport import TransportError
    from winnow.local.files import LocalModelError, LocalServerDied
    from winnow.prompts import TemplateProblem

    try:
        yield
    except LocalServerDied as exc:
        fail(f"{exc}\n  every judgment finished before that is cached: re-run the same command to go on", code=1)
    except DataError as exc:
        if not exc.bad_rows:  # a file-level problem (layout, format): its message says what to do
            fail(str(exc))
        fail(f"{exc}\n  {_bad_row_hint(on_bad_row)}")
    except (PreflightError, CacheError, TemplateProblem, FileNotFoundError, ValueError, LocalModelError,
            OutputError) as exc:
        fail(str(exc))  # UnknownJudge and PipelineError are ValueErrors too
    except FatalRunError as exc:
        fail(str(exc), code=1)
    except TransportError as exc:  # an embedding request (select --embed-model, tags normalize)
        if exc.status in (401, 403):
            fail(f"no usable API key: {exc}\n  pass --api-key, or set the provider's key variable")
        fail(f"the request failed: {exc}", code=1)
    except Interrupted as exc:
        if "--no-cache" in sys.argv:
            why = str(exc).split(" (", 1)[0]  # not its "(N judgments cached ...)": nothing was
            err(f"\n{why}: with --no-cache nothing was kept; the same command starts again from the first row")
        else:
            err(f"\n{exc}: every finished judgment is cached. Resume with:\n  {resume_command()}")
        raise typer.Exit(130) from None
