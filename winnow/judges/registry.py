"""Judge lookup by name or path.

Built-ins are listed as import strings so that naming a judge imports only that judge.
A spec that is not a built-in name but an existing path is a user judge (a ``judge.yaml``
file or a folder holding one).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

from winnow.judges.base import Judge

BUILTIN: dict[str, str] = {
    "alpagasus": "winnow.judges.alpagasus:AlpagasusJudge",
    "instag": "winnow.judges.instag:InstagJudge",
    "deita-complexity": "winnow.judges.deita:DeitaComplexityJudge",
    "deita-quality": "winnow.judges.deita:DeitaQualityJudge",
}


class UnknownJudge(ValueError):
    pass


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
