"""``winnow report``: a self-contained HTML report of judged file(s) and a selected subset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from winnow.cli.app import app, check_output, err, fail, finite, layout_option, user_errors


def detect_judges(rows: list[dict[str, Any]]) -> list[str]:
    """Judges whose ``<judge>_status`` column the rows carry, in column order."""
    found: dict[str, None] = {}
    for row in rows[:200]:
        for column in row:
            if column.endswith("_status") and column != "status":
                found.setdefault(column[: -len("_status")], None)
    return list(found)


def _trust_inputs(paths: list[Path], judges: list[str], pool: Path) -> dict[str, dict[str, object]]:
    """{judge: {"agreement" | "stability": report}} from the JSON files of agree / audit stability:
    checked against the report's judges and pool (``audit.trust_files``), refused with a clear
    error, and what cannot be checked is said on stderr."""
    from winnow.audit.trust_files import load_trust_files

    try:
        out, warnings = load_trust_files(paths, judges, pool)
    except ValueError as exc:
        fail(str(exc))
    for warning in warnings:
        err(f"warning: {warning}")
    return dict(out)


@app.command()
def report(
    files: list[Path] = typer.Argument(None, help="Judged file(s); two files are compared side by side."),
    output: Path = typer.Option(..., "-o", "--output", help="The HTML file to write."),
    pool: Path | None = typer.Option(None, "--pool", help="The judged pool (default: the first FILE)."),
    selected: Path | None = typer.Option(
        None, "--selected", help="The selected subset (winnow select output)."
    ),
    judge: list[str] | None = typer.Option(
        None, "--judge", "-j", help="Judges to show (default: all found)."
    ),
    threshold: float | None = typer.Option(None, "--threshold", callback=finite("--threshold"),
                                           help="Selection threshold for comparisons."),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", envvar="WINNOW_CACHE_DIR", help="Cache folder."
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read tokens and cost from the cache."),
    layout: str | None = layout_option(),
    trust: list[Path] | None = typer.Option(None, "--trust", help="JSON of `winnow agree --json` or `winnow audit "
                                            "stability --json`, shown in 'Can this judge be trusted?'; repeatable."),
) -> None:
    """Score distributions, tags, DEITA scatter, examples, failures, cost and provenance in one HTML file.

    The output's folder must exist, and the output must not be one of the files read."""
    from winnow.audit.compare import compare_rows
    from winnow.audit.report import write_report
    from winnow.cache import CacheError, JudgmentCache
    from winnow.cli.compare import load_judged
    from winnow.data import DataError

    files = list(files or [])
    pool_path = pool or (files[0] if files else None)
    if pool_path is None:
        fail("give a judged file (or --pool FILE)")
    if len(files) > 2:
        fail("give one judged file, or two to compare")
    check_output(output, inputs=[*files, pool_path, selected, *(trust or [])])
    try:
        pool_rows, ids = load_judged(pool_path, layout)
        selected_rows = load_judged(selected, layout)[0] if selected else None
        other = load_judged(files[1], layout) if len(files) == 2 else None
    except (DataError, FileNotFoundError) as exc:
        fail(str(exc))
    judges = judge or detect_judges(pool_rows)
    trust_inputs = _trust_inputs(list(trust or []), judges, pool_path)  # before any work: a bad file is refused
    compare = None
    if other is not None:
        compare = {}
        for name in (j.replace("-", "_") for j in judges):
            if any(f"{name}_status" in r for r in other[0][:200]):
                compare[name] = compare_rows(
                    pool_rows,
                    other[0],
                    name,
                    names=(files[0].name, files[1].name),
                    ids_a=ids,
                    ids_b=other[1],
                    threshold=threshold,
                )
    settings = {
        "pool": str(pool_path),
        "selected": str(selected) if selected else None,
        "judges": judges,
        "compared with": str(files[1]) if other is not None else None,
    }
    cache = None
    if not no_cache:
        try:
            cache = JudgmentCache(cache_dir, create=False)  # only read: a missing cache is not made
        except CacheError as exc:
            err(f"warning: no cache figures ({exc})")
    try:
        from winnow.data import load

        with user_errors(on_bad_row=False):  # an OutputError (a full disk, ...): one line, no traceback
            write_report(
                pool_rows,
                selected_rows,
                judges=judges,
                settings=settings,
                cache=cache,
                compare=compare,
                output=output,
                sample_ids=ids,
                samples=load(pool_path, layout=layout).samples,
                trust=trust_inputs,
                judged_file=pool_path,
            )
    finally:
        if cache is not None:
            cache.close()
    err(f"wrote {output}")
