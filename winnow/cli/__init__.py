"""The ``winnow`` command.  Importing this must stay cheap: no litellm, pandas or numpy.

Each command lives in its own module and imports what it needs inside its body.
"""

from __future__ import annotations

from winnow.cli import agree as _agree  # noqa: F401
from winnow.cli import audit as _audit  # noqa: F401
from winnow.cli import batch as _batch  # noqa: F401
from winnow.cli import cache as _cache  # noqa: F401
from winnow.cli import compare as _compare  # noqa: F401
from winnow.cli import inspect as _inspect  # noqa: F401
from winnow.cli import judges as _judges  # noqa: F401
from winnow.cli import rate as _rate  # noqa: F401  (registers commands)
from winnow.cli import reparse as _reparse  # noqa: F401
from winnow.cli import report as _report  # noqa: F401
from winnow.cli import run as _run  # noqa: F401
from winnow.cli import select as _select  # noqa: F401
from winnow.cli import serve as _serve  # noqa: F401
from winnow.cli import tags as _tags  # noqa: F401
from winnow.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
