"""Judge lookup by name or path.

Built-ins are listed as import strings so that naming a judge imports only that judge.
A spec that is not a built-in name but an existing path is a user judge (a ``judge.yaml``
file or a folder holding one).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from winnow.hints import did_you_mean
from winnow.judges.base import Judge

BUILTIN: dict[str, str] = {
    "alpagasus": "winnow.judges.alpagasus:AlpagasusJudge",
    "instag": "winnow.judges.instag:InstagJudge",
    "deita-complexity": "winnow.judges.deita:DeitaComplexityJudge",
    "deita-quality": "winnow.judges.deita:DeitaQualityJudge",
}


class UnknownJudge(ValueError):
    pass


class UnknownJudgeOption(ValueError):
    """An option no judge of the run takes: a typo would otherwise judge with the default, silently."""


def judge_class(name: str) -> type[Judge]:
    module_name, _, attr = BUILTIN[name].partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    assert issubclass(cls, Judge)
    return cls


def get_judge(spec: str, options: dict[str, Any] | None = None) -> Judge:
    """Build a judge from a name or a path; ``options`` go to the judges that accept them.

    Options a judge does not accept are ignored only when they were meant for other judges
    in the same run (the CLI passes one option set to all); unknown option *names* across
    every judge are rejected by the caller.
    """
    options = options or {}
    if spec in BUILTIN:
        cls = judge_class(spec)
        accepted = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in options.items() if k in accepted})
    path = Path(spec)
    if path.exists():
        from winnow.judges.user import load_user_judge

        return load_user_judge(path, options)
    known = ", ".join(sorted(BUILTIN))
    raise UnknownJudge(f"unknown judge '{spec}': use one of {known}, or a path to a judge.yaml or judge folder")


USER_JUDGE_OPTIONS = frozenset({"structured"})  # the rest of a user judge lives in its judge.yaml


def accepted_options(spec: str | Judge) -> frozenset[str]:
    """The option names a judge takes: a built-in's constructor arguments, a judge.yaml's
    ``structured``; none for a judge object, which was built before options could reach it."""
    if isinstance(spec, Judge):
        return frozenset()
    if spec not in BUILTIN:
        return USER_JUDGE_OPTIONS
    cls = judge_class(spec)
    params = inspect.signature(cls.__init__).parameters
    return frozenset(name for name, p in params.items()
                     if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


def check_options(specs: Iterable[str | Judge], options: Mapping[str, Any], flag: str = "--judge-option") -> None:
    """Refuse option names that none of ``specs`` takes, with the closest name as a hint.

    One option set goes to every judge of a run (the CLI's ``--judge-option``), so an option only
    some judges take is fine; one that no judge takes is a typo or a misunderstanding.
    """
    specs = list(specs)
    known = frozenset().union(*(accepted_options(s) for s in specs)) if specs else frozenset()
    for name in options:
        if name in known:
            continue
        hint = did_you_mean(name, known)
        names = ", ".join(s if isinstance(s, str) else s.name for s in specs)
        takes = ", ".join(sorted(known)) or "no options"
        raise UnknownJudgeOption(f"{flag} {name}: no such option for {names} (options: {takes}){hint}")
