"""``winnow reparse``: today's parsers over the stored replies; no request is sent."""

from __future__ import annotations

from pathlib import Path

import typer

from winnow.cli.app import app, err, user_errors
from winnow.cli.cache import _CACHE_DIR, _JUDGE, _MODEL, _SAMPLE, _STATUS, _TEMPLATE


@app.command()
def reparse(
    cache_dir: Path | None = _CACHE_DIR,
    judge: str | None = _JUDGE,
    model: str | None = _MODEL,
    status: str | None = _STATUS,
    sample_id: str | None = _SAMPLE,
    template_hash: str | None = _TEMPLATE,
    user_judge: list[Path] | None = typer.Option(
        None, "--user-judge", help="A user judge's judge.yaml (or folder), to re-parse its records. Repeatable."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Say what would change; write nothing."),
) -> None:
    """Re-read cached judgments with this winnow's parsers (after an upgrade): free, no request."""
    from winnow.audit.reparse import reparse as reparse_api

    with user_errors(on_bad_row=False):
        result = reparse_api(cache_dir, judge=judge, model=model, status=status, sample_id=sample_id,
                             template_hash=template_hash, user_judges=user_judge or [], dry_run=dry_run)
    err("\n".join(result.lines()))
