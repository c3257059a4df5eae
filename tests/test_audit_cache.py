"""``winnow cache stats|ls|show|export|prune`` on a cache filled by a real rate over loopback HTTP."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

import winnow.cli.cache  # noqa: F401  (registers `winnow cache`; the lead adds it to winnow/cli/__init__)
from winnow.api import rate
from winnow.cache import JudgmentCache
from winnow.cache.audit import RecordFilter, cache_stats, iter_records, parse_age, prune
from winnow.cache.runs import append_run, last_run, read_runs
from winnow.cli.app import app
from winnow.engine import EngineSettings

MODEL = "openai/fake-model"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def filled(alpaca_rows, write_jsonl, fake_server, tmp_path):
    """6 rows rated by two models; row 2 never gets a usable score (judge_failed after a re-ask)."""
    rows = alpaca_rows[:6]
    fake_server.script(rows[2]["instruction"][:40], "I cannot rate this.")
    fake_server.script("Your previous answer could not be used", "Still no.")  # the re-ask fails too
    data = write_jsonl(rows)
    cache = tmp_path / "c"
    settings = EngineSettings(backoff_initial=0.01)
    first = rate(data, ["alpagasus"], MODEL, api_base=fake_server.url, cache_dir=cache, settings=settings)
    rate(
        data,
        ["alpagasus"],
        "openai/other-model",
        api_base=fake_server.url,
        cache_dir=cache,
        settings=settings,
    )
    append_run(cache, first.stats.as_dict(), command="rate", judges=["alpagasus"], models=[MODEL])
    return cache, first, rows


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def _snapshot(cache: Path) -> list[tuple]:
    con = sqlite3.connect(cache / "cache.db")
    try:
        return con.execute(
            "SELECT key, value, store_time, access_time, access_count FROM Cache ORDER BY key"
        ).fetchall()
    finally:
        con.close()


def test_stats_ls_show_and_reads_never_rewrite(filled):
    cache, first, rows = filled
    before = _snapshot(cache)
    stats = json.loads(_invoke("cache", "stats", "--cache-dir", str(cache), "--json"))
    assert stats["records"] == 12
    assert stats["by_model"] == {MODEL: 6, "openai/other-model": 6}
    assert stats["by_status"]["judge_failed"] == 2 and stats["by_status"]["ok"] == 10
    assert stats["prompt_tokens"] > 0 and stats["size_bytes"] > 0
    assert stats["last_run"]["stats"]["calls"] == first.stats.calls
    text = _invoke("cache", "stats", "--cache-dir", str(cache))
    assert "hit rate 0.0%" in text and "by template hash" in text

    listing = _invoke("cache", "ls", "--cache-dir", str(cache), "--status", "judge_failed", "--model", MODEL)
    assert "1 of 1 judgments" in listing and "judge_failed" in listing
    sample_id = (
        first.rows
        and next(iter_records(JudgmentCache(cache), RecordFilter(status="judge_failed")))["sample_id"]
    )
    shown = _invoke("cache", "show", sample_id, "--cache-dir", str(cache))
    assert shown.count("== wj1-") == 2  # one judgment per model
    assert rows[2]["instruction"][:40] in shown  # the rendered prompt
    assert "I cannot rate this." in shown and "re-asks (1)" in shown and "key parts" in shown
    key = shown.split("== ", 2)[1].split()[0]
    assert _invoke("cache", "show", key[:14], "--cache-dir", str(cache)).count("== wj1-") == 1

    assert _snapshot(cache) == before  # no read touched a record


def test_export_jsonl_and_parquet(filled, tmp_path):
    import pyarrow.parquet as pq

    cache, _, _ = filled
    _invoke("cache", "export", "--cache-dir", str(cache), "-o", str(tmp_path / "j.jsonl"), "--model", MODEL)
    lines = (tmp_path / "j.jsonl").read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(x)["model"] == MODEL for x in lines)
    _invoke("cache", "export", "--cache-dir", str(cache), "-o", str(tmp_path / "j.parquet"))
    table = pq.read_table(tmp_path / "j.parquet")
    assert table.num_rows == 12
    assert {"key", "raw", "parsed", "prompt_tokens", "cost"} <= set(table.column_names)
    bad = CliRunner().invoke(
        app, ["cache", "export", "--cache-dir", str(cache), "-o", str(tmp_path / "j.csv")]
    )
    assert bad.exit_code == 2 and ".jsonl or .parquet" in bad.output


def test_prune_dry_run_then_for_real(filled):
    cache, _, _ = filled
    out = _invoke("cache", "prune", "--cache-dir", str(cache), "--model", "openai/other-model", "--dry-run")
    assert "would delete 6 judgments" in out
    assert len(JudgmentCache(cache)) == 12
    assert "deleted 0" in _invoke("cache", "prune", "--cache-dir", str(cache), "--older-than", "30d")
    out = _invoke("cache", "prune", "--cache-dir", str(cache), "--model", "openai/other-model")
    assert "deleted 6 judgments" in out
    with JudgmentCache(cache) as c:
        assert len(c) == 6 and cache_stats(c)["by_model"] == {MODEL: 6}
        future = RecordFilter(older_than=parse_age("1d"), now=datetime.now(UTC) + timedelta(days=2))
        assert len(prune(c, future, dry_run=True)) == 6
    nofilter = CliRunner().invoke(app, ["cache", "prune", "--cache-dir", str(cache)])
    assert nofilter.exit_code == 2 and "needs a filter" in nofilter.output


def test_parse_age():
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age("1.5h") == timedelta(minutes=90)
    with pytest.raises(ValueError, match="bad age '30 days'"):
        parse_age("30 days")


def test_run_log_skips_a_torn_line(tmp_path):
    append_run(tmp_path, {"hit_rate": 0.5}, command="rate")
    with (tmp_path / "runs.jsonl").open("ab") as fh:
        fh.write(b'{"finished_at": "torn')
    assert len(read_runs(tmp_path)) == 1
    append_run(tmp_path, {"hit_rate": 1.0}, command="rate")  # a torn line does not eat the next one
    assert [r["stats"]["hit_rate"] for r in read_runs(tmp_path)] == [0.5]
    assert last_run(tmp_path) is not None and last_run(tmp_path / "none") is None


_WORKER = textwrap.dedent("""
    import sys
    from winnow.cache import JudgmentCache
    from winnow.cache.runs import append_run
    name, directory = sys.argv[1], sys.argv[2]
    cache = JudgmentCache(directory)
    for i in range(150):
        cache.put(f"wj1-{name}-{i}", {"key": f"wj1-{name}-{i}", "judge": name, "n": i, "raw": "x" * 500})
        if i % 10 == 0:
            assert all(r["key"].startswith("wj1-") for r in cache.records())
            append_run(directory, {"calls": i}, command=name)
    cache.close()
""")


def test_two_processes_share_one_cache_directory(tmp_path):
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, name, str(tmp_path / "c")], cwd=ROOT)
        for name in ("a", "b")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    with JudgmentCache(tmp_path / "c") as cache:
        records = list(cache.records())
        assert len(records) == 300
        assert cache_stats(cache)["by_judge"] == {"a": 150, "b": 150}
    con = sqlite3.connect(tmp_path / "c" / "cache.db")
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    assert len(read_runs(tmp_path / "c")) == 30  # every appended line whole
