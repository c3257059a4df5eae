"""``winnow cache stats|ls|show|export|prune``: read (and prune) the judgment cache, the audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from winnow.cli.app import app, check_output, fail

cache_app = typer.Typer(
    help="Inspect the judgment cache: stats, ls, show, export, prune.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
app.add_typer(cache_app, name="cache")



def _status(status: str | None) -> str | None:
    """``--status`` must name a status records can have: a typo would silently match nothing
    (and ``prune`` would report deleting 0 judgments as if that were the answer).  The option's
    callback, so every command that takes it (``reparse`` too) checks it the same way."""
    from winnow.types import Status

    known = [str(s) for s in Status]
    if status is not None and status not in known:
        fail(f"--status {status!r}: a judgment's status is one of {', '.join(known)}")
    return status


_CACHE_DIR = typer.Option(None, "--cache-dir", envvar="WINNOW_CACHE_DIR", help="Cache folder.")
_JUDGE = typer.Option(None, "--judge", "-j", help="Only this judge.")
_MODEL = typer.Option(None, "--model", "-m", help="Only this model.")
_STATUS = typer.Option(None, "--status", callback=_status, help="Only this status (ok or judge_failed).")
_SAMPLE = typer.Option(None, "--sample-id", help="Only this sample id.")
_TEMPLATE = typer.Option(None, "--template-hash", help="Only this judge fingerprint (prefix).")
_OLDER = typer.Option(None, "--older-than", help="Only records older than this age (30d, 12h, 2w).")
_CONTAINS = typer.Option(None, "--contains", help="Only records whose prompt contains this text (finds a row's "
                         "judgment whatever sample id it was first cached under).")


def _open(cache_dir: Path | None) -> Any:
    """The existing cache: these commands only read (or prune) it, so a folder without one (a
    mistyped --cache-dir) is an error that creates nothing, not a new empty cache.  Exit 2, a
    user mistake, as ``reparse`` says it."""
    from winnow.cache import CacheError, JudgmentCache

    try:
        return JudgmentCache(cache_dir, create=False)
    except CacheError as exc:
        fail(str(exc))


def _filter(
    judge: str | None,
    model: str | None,
    status: str | None,
    sample_id: str | None,
    template_hash: str | None,
    older_than: str | None,
    contains: str | None = None,
) -> Any:
    from winnow.cache.audit import RecordFilter, parse_age

    try:
        age = parse_age(older_than) if older_than else None
    except ValueError as exc:
        fail(f"--older-than: {exc}")
    return RecordFilter(
        judge=judge,
        model=model,
        status=_status(status),
        sample_id=sample_id,
        template_hash=template_hash,
        older_than=age,
        contains=contains,
    )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


@cache_app.command("stats")
def stats(
    cache_dir: Path | None = _CACHE_DIR,
    judge: str | None = _JUDGE,
    model: str | None = _MODEL,
    status: str | None = _STATUS,
    template_hash: str | None = _TEMPLATE,
    older_than: str | None = _OLDER,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Judgments by judge, model, template hash and status; tokens and money; last run; size."""
    import orjson

    from winnow.cache.audit import cache_stats
    from winnow.cache.runs import last_run

    with _open(cache_dir) as cache:
        s = cache_stats(cache, _filter(judge, model, status, None, template_hash, older_than))
    run = last_run(s["directory"])
    if as_json:
        typer.echo(orjson.dumps({**s, "last_run": run}, option=orjson.OPT_INDENT_2).decode())
        return
    lines = [f"cache {s['directory']}: {s['records']} judgments, {_size(s['size_bytes'])} on disk"]
    for title, field in (
        ("judge", "by_judge"),
        ("model", "by_model"),
        ("template hash", "by_fingerprint"),
        ("status", "by_status"),
    ):
        if s[field]:
            lines.append(f"  by {title}: " + ", ".join(f"{k} {v}" for k, v in s[field].items()))
    lines.append(
        f"  tokens: {s['prompt_tokens']:,} in, {s['completion_tokens']:,} out; spent ${s['cost']:.4f}"
    )
    for name, money in s["cost_by_judge_model"].items():
        if money:
            lines.append(f"    {name}: ${money:.4f}")
    if s["oldest"]:
        lines.append(f"  made between {s['oldest']} and {s['newest']}")
    if run:
        rs = run.get("stats") or {}
        lines.append(
            f"  last run ({run.get('finished_at')}, {run.get('command', 'rate')}): hit rate "
            f"{100 * float(rs.get('hit_rate') or 0):.1f}% ({rs.get('cache_hits', 0)} hits, "
            f"{rs.get('calls', 0)} calls), cost ${float(rs.get('cost') or 0):.4f}"
        )
    else:
        lines.append("  last run: none logged in runs.jsonl")
    typer.echo("\n".join(lines))


def _summary(record: dict[str, Any]) -> str:
    parsed = record.get("parsed")
    if isinstance(parsed, dict):
        if "score" in parsed:
            return f"score {parsed['score']}"
        if "tags" in parsed and isinstance(parsed["tags"], list):
            return "tags " + ", ".join(
                str(t.get("tag", t) if isinstance(t, dict) else t) for t in parsed["tags"]
            )
        if "scores" in parsed:
            return f"scores {parsed['scores']}"
    return str(record.get("error") or "")[:60]


@cache_app.command("ls")
def ls(
    cache_dir: Path | None = _CACHE_DIR,
    judge: str | None = _JUDGE,
    model: str | None = _MODEL,
    status: str | None = _STATUS,
    sample_id: str | None = _SAMPLE,
    template_hash: str | None = _TEMPLATE,
    older_than: str | None = _OLDER,
    contains: str | None = _CONTAINS,
    limit: int = typer.Option(50, "--limit", "-n", min=0, help="Rows to show at most (0: all)."),
) -> None:
    """List judgments as a table, newest first."""
    from rich.console import Console
    from rich.table import Table

    from winnow.cache.audit import iter_records

    with _open(cache_dir) as cache:
        records = list(
            iter_records(cache, _filter(judge, model, status, sample_id, template_hash, older_than, contains))
        )
    records.sort(key=lambda r: str(r.get("created_at") or ""), reverse=True)
    shown = records if not limit else records[:limit]
    table = Table(title=f"{len(shown)} of {len(records)} judgments", title_justify="left")
    for name in (
        "key",
        "judge",
        "model",
        "template",
        "status",
        "sample",
        "purpose",
        "result",
        "tokens",
        "cost",
        "created",
    ):
        table.add_column(name, overflow="fold")
    for r in shown:
        usage = r.get("usage") or {}
        table.add_row(
            str(r.get("key", ""))[:16],
            str(r.get("judge")),
            str(r.get("model")),
            str(r.get("fingerprint", ""))[:8],
            str(r.get("status")),
            str(r.get("sample_id")),
            str(r.get("purpose")),
            _summary(r)[:60],
            f"{usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)}",
            f"{float(r.get('cost') or 0):.5f}",
            str(r.get("created_at", ""))[:19],
        )
    Console(width=200, soft_wrap=False).print(table)


@cache_app.command("show")
def show(
    key_or_id: str = typer.Argument(..., help="A cache key (wj1-...) or a sample id."),
    cache_dir: Path | None = _CACHE_DIR,
) -> None:
    """Everything about a judgment: prompt, raw reply, parsed value, re-asks, retries, timing, key."""
    from winnow.audit.cache_views import format_record
    from winnow.cache.audit import find_records

    with _open(cache_dir) as cache:
        records = find_records(cache, key_or_id)
        if not records and len(key_or_id) >= 6:  # a key prefix, as ls shows it
            records = [r for k in cache.keys() if k.startswith(key_or_id) for r in [cache.get(k)] if r]
    if not records:
        fail(_not_found(key_or_id))  # a key or id the user typed: exit 2, as for any bad argument
    typer.echo("\n\n".join(format_record(r) for r in records))


def _not_found(key_or_id: str) -> str:
    """Why a sample id can miss although its row was judged, and how to find the record anyway."""
    return (
        f"no judgment with key or sample id '{key_or_id}'.\n"
        "  The cache is content-addressed: a record keeps the sample id of the row it was first made for, "
        "and a row with the same content under another id (another file, --id-column) reuses it.\n"
        "  Find it by its content and show it by key: winnow cache ls --contains 'TEXT FROM THE ROW' "
        "(then winnow cache show KEY; the 16 characters ls shows are enough)"
    )


@cache_app.command("export")
def export(
    output: Path = typer.Option(..., "-o", "--output", help="judgments.jsonl or judgments.parquet"),
    cache_dir: Path | None = _CACHE_DIR,
    judge: str | None = _JUDGE,
    model: str | None = _MODEL,
    status: str | None = _STATUS,
    sample_id: str | None = _SAMPLE,
    template_hash: str | None = _TEMPLATE,
    older_than: str | None = _OLDER,
    contains: str | None = _CONTAINS,
) -> None:
    """Write every matching record to JSONL (verbatim) or Parquet (nested fields as JSON text).

    The output's folder must exist, and the output must not be inside the cache folder."""
    from winnow.cache.audit import export_records, iter_records

    flt = _filter(judge, model, status, sample_id, template_hash, older_than, contains)
    with _open(cache_dir) as cache:
        _check_export(output, cache.directory)
        try:
            n = export_records(iter_records(cache, flt), output)
        except ValueError as exc:
            fail(str(exc))
        except OSError as exc:  # after the checks: a full disk, a folder removed meanwhile
            _drop(output.with_name(output.name + ".tmp"))
            fail(f"cannot write {output}: {exc.strerror or exc}")
    typer.echo(f"wrote {n} judgments to {output}")


def _check_export(output: Path, cache_directory: Path) -> None:
    """Refuse an export the cache cannot survive or nobody could write: inside the cache folder
    (``-o CACHE/cache.db`` would replace the cache with its own export), or unwritable."""
    check_output(output)
    if output.resolve().is_relative_to(cache_directory.resolve()):
        fail(f"-o {output} is inside the cache folder {cache_directory}: it could replace the cache's own "
             "files; export somewhere else")


def _drop(path: Path) -> None:
    """Remove a half-written temp file; one that cannot be removed is left (nothing to add)."""
    import contextlib

    with contextlib.suppress(OSError):
        path.unlink()


@cache_app.command("prune")
def prune(
    cache_dir: Path | None = _CACHE_DIR,
    judge: str | None = _JUDGE,
    model: str | None = _MODEL,
    status: str | None = _STATUS,
    template_hash: str | None = _TEMPLATE,
    older_than: str | None = _OLDER,
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be deleted."),
) -> None:
    """Delete judgments by judge, model, status, template hash or age (a filter is required)."""
    from collections import Counter

    from winnow.cache.audit import prune as prune_records

    flt = _filter(judge, model, status, None, template_hash, older_than)
    with _open(cache_dir) as cache:
        try:
            gone = prune_records(cache, flt, dry_run=dry_run)
        except ValueError as exc:
            fail(str(exc))
    groups = Counter(
        f"{r.get('judge')} / {r.get('model')} / {str(r.get('fingerprint', ''))[:8]}" for r in gone
    )
    verb = "would delete" if dry_run else "deleted"
    lines = [f"{verb} {len(gone)} judgments"] + [f"  {k}: {v}" for k, v in groups.most_common()]
    typer.echo("\n".join(lines))
