"""Fixes to the audit commands found by exploratory testing: report provenance, Ctrl-C in compare,
cached stability dry runs, spend lines and run log entries, read-only cache commands, --status
validation, and finding a judgment cached under another sample id."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import winnow.cli.audit
import winnow.cli.cache
import winnow.cli.compare
import winnow.cli.report  # noqa: F401  (these register the commands under test)
from winnow.api import rate
from winnow.audit import report_data as rd
from winnow.cache import JudgmentCache
from winnow.cache.runs import read_runs
from winnow.cli.app import app
from winnow.cli.compare import load_judged

MINI, BIG = "openai/gpt-4o-mini", "openai/gpt-4o"  # both priced in litellm's table: costs are not zero


def _responder(body):
    """gpt-4o-mini says what the default fake says; gpt-4o scores a third of the rows one step lower."""
    from tests.fakeserver import default_responder, hash_messages

    reply = default_responder(body)
    if body.get("model") == "gpt-4o" and int(hash_messages(body["messages"])[:4], 16) % 3 == 0:
        return f"{max(0.0, float(reply.split(chr(10), 1)[0]) - 1):g}\nStricter."
    return reply


@pytest.fixture
def server():
    from tests.fakeserver import FakeServer

    with FakeServer(record=True, responder=_responder) as srv:
        yield srv


def _cli(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result.output


@pytest.fixture
def judged_twice(alpaca_rows, write_jsonl, server, tmp_path):
    """20 rows rated by gpt-4o-mini (mini.jsonl) and gpt-4o (big.jsonl), then 8 of mini's rows
    judged again 3 times by `audit stability`: 20 + 20 + 24 records in one cache."""
    data = write_jsonl(alpaca_rows[:20])
    cache = tmp_path / "c"
    kw = {"api_base": server.url, "cache_dir": cache}
    mini = rate(data, ["alpagasus"], MINI, output=tmp_path / "mini.jsonl", **kw)
    big = rate(data, ["alpagasus"], BIG, output=tmp_path / "big.jsonl", **kw)
    _cli("audit", "stability", str(tmp_path / "mini.jsonl"), "--judge", "alpagasus", "--model", MINI,
         "--api-base", server.url, "--cache-dir", str(cache), "--sample", "8", "--repeats", "3")
    return tmp_path, cache, mini, big, server


# 1. the report counts only the records behind the file


def test_report_costs_count_only_the_files_own_judgments(judged_twice):
    tmp_path, cache, mini, big, _ = judged_twice
    for name, result, model, other in (("mini", mini, MINI, BIG), ("big", big, BIG, MINI)):
        rows, ids = load_judged(tmp_path / f"{name}.jsonl")
        with JudgmentCache(cache) as jc:
            found = rd.file_records(jc, ["alpagasus"], ids, rows, source=tmp_path / f"{name}.jsonl")
        groups = rd.group_costs(found.records)
        assert list(groups) == [f"alpagasus / {model}"]  # the other model never judged this file
        g = groups[f"alpagasus / {model}"]
        assert g["calls"] == 20 == result.stats.calls  # not 20 + 20 + 24 repeats
        assert g["cost"] == pytest.approx(result.stats.cost) and g["cost"] > 0
        assert len(g["fingerprints"]) == 1  # the repeats' template hashes are not this file's
        assert found.left_out["stability repeats (winnow audit stability)"] == 24
        assert any(other in why for why in found.left_out)
    html = tmp_path / "rep.html"
    _cli("report", str(tmp_path / "big.jsonl"), "-o", str(html), "--cache-dir", str(cache))
    text = html.read_text()
    section = text[text.index("Tokens, cost and provenance"):text.index("<h2>Settings")]
    assert f"alpagasus / {BIG}" in section and f"alpagasus / {MINI}</td>" not in section
    assert "Counted:" in section and "stability repeats (winnow audit stability): 24" in section


def test_report_breaks_a_tie_with_the_run_log_and_uses_cache_keys_when_the_rows_carry_them(
    alpaca_rows, write_jsonl, fake_server, tmp_path
):
    """The plain fake server answers both models alike, so only the run log can tell them apart."""
    data = write_jsonl(alpaca_rows[:6])
    kw = {"api_base": fake_server.url, "cache_dir": tmp_path / "c"}
    a = rate(data, ["alpagasus"], MINI, output=tmp_path / "a.jsonl", **kw)
    rate(data, ["alpagasus"], BIG, output=tmp_path / "b.jsonl", **kw)
    rows, ids = load_judged(tmp_path / "a.jsonl")
    with JudgmentCache(tmp_path / "c") as jc:
        tie = rd.cache_costs(jc, ["alpagasus"], ids, rows)  # no file named: a tie, both shown and said so
        found = rd.file_records(jc, ["alpagasus"], ids, rows)
        by_log = rd.cache_costs(jc, ["alpagasus"], ids, rows, source=tmp_path / "a.jsonl")
        keyed = [dict(r, alpagasus_keys=",".join(k)) for r, k in zip(rows, a.keys["alpagasus"], strict=True)]
        by_keys = rd.cache_costs(jc, ["alpagasus"], ids, keyed)
    assert set(tie) == {f"alpagasus / {MINI}", f"alpagasus / {BIG}"}
    assert "agree equally" in " ".join(found.basis)
    assert list(by_log) == list(by_keys) == [f"alpagasus / {MINI}"]
    assert by_log[f"alpagasus / {MINI}"]["calls"] == by_keys[f"alpagasus / {MINI}"]["calls"] == 6


# 2. Ctrl-C in compare (and stability) exits 130 with the resume command; 4. runs are logged


def test_ctrl_c_in_compare_exits_130_with_the_resume_command(alpaca_rows, write_jsonl, tmp_path, monkeypatch):
    from winnow.engine import Interrupted

    def interrupted(*args, **kwargs):
        raise Interrupted("interrupted by SIGINT (3 judgments cached, 3 new this run)")

    monkeypatch.setattr("winnow.api.rate", interrupted)
    data = write_jsonl(alpaca_rows[:4])
    args = ["compare", str(data), "--judge", "alpagasus", "--model", MINI, "--model", BIG,
            "--cache-dir", str(tmp_path / "c")]
    monkeypatch.setattr("sys.argv", ["winnow", *args])  # what the resume command repeats
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 130, (result.output, result.exception)
    assert "interrupted by SIGINT" in result.output and "Resume with:" in result.output
    assert f"winnow compare {data}" in result.output and "Traceback" not in result.output


def test_ctrl_c_in_stability_exits_130_and_the_partial_run_is_logged(judged_twice, monkeypatch):
    from winnow.engine import Interrupted
    from winnow.engine.runner import Engine

    tmp_path, cache, _, _, server = judged_twice

    def interrupted(self, *args, **kwargs):
        raise Interrupted("interrupted by SIGINT")

    monkeypatch.setattr(Engine, "run", interrupted)
    out = _cli("audit", "stability", str(tmp_path / "mini.jsonl"), "--judge", "alpagasus", "--model", MINI,
               "--api-base", server.url, "--cache-dir", str(cache), "--repeats", "4", code=130)
    assert "Resume with:" in out
    assert [r["command"] for r in read_runs(cache)][-2:] == ["audit stability", "audit stability"]


def test_compare_prints_its_spend_and_logs_its_runs(judged_twice):
    tmp_path, cache, _, _, server = judged_twice
    stability = [r for r in read_runs(cache) if r["command"] == "audit stability"]
    assert len(stability) == 1 and stability[0]["stats"]["calls"] == 24 and stability[0]["repeats"] == 3
    before = server.total
    out = _cli("compare", str(tmp_path / "mini.jsonl"), "--judge", "alpagasus", "--model", MINI, "--model",
               "openai/gpt-4-turbo", "--api-base", server.url, "--cache-dir", str(cache))
    sent = server.total - before
    assert sent == 20  # mini's judgments are cached; gpt-4-turbo's are new
    assert "compare: cost $" in out
    assert f"{MINI}: 20 judgments from cache, 0 new" in out
    assert "openai/gpt-4-turbo: 0 judgments from cache, 20 new (20 requests" in out
    runs = [r for r in read_runs(cache) if r["command"] == "compare"]
    assert [r["models"] for r in runs] == [[MINI], ["openai/gpt-4-turbo"]]
    assert runs[1]["stats"]["calls"] == 20 and runs[1]["stats"]["cost"] > 0


# 3. the stability dry run reads the cache


def test_stability_dry_run_counts_cached_repeats_and_prices_replies_from_the_cache(judged_twice):
    tmp_path, cache, _, _, server = judged_twice
    args = ["audit", "stability", str(tmp_path / "mini.jsonl"), "--judge", "alpagasus", "--model", MINI,
            "--api-base", server.url, "--cache-dir", str(cache), "--sample", "8", "--dry-run"]
    before = server.total
    done = _cli(*args, "--repeats", "3")
    assert "dry run: 0 calls (8 rows x 3 repeats); 24 of 24 repeat judgments already cached" in done
    more = _cli(*args, "--repeats", "5")  # repeats 4 and 5 are new
    assert "dry run: 16 calls (8 rows x 5 repeats); 24 of 40" in more
    assert "mean of cached alpagasus replies" in more and "max_tokens" not in more
    assert server.total == before  # nothing was sent


# 5. read-only commands create no cache


@pytest.mark.parametrize("command", [["cache", "stats"], ["cache", "ls"], ["cache", "show", "wj1-0123456789"],
                                     ["cache", "export", "-o", "x.jsonl"], ["cache", "prune", "--model", "m"]])
def test_cache_commands_on_a_folder_without_a_cache_create_nothing(tmp_path, command):
    typo = tmp_path / "typo-cache"
    out = _cli(*command, "--cache-dir", str(typo), code=2)  # a user mistake, as reparse says it
    assert f"no winnow cache at {typo}" in out
    assert not typo.exists()


def test_dry_run_and_report_create_no_cache(alpaca_rows, write_jsonl, tmp_path):
    data = write_jsonl([dict(r, alpagasus_score=4.0, alpagasus_status="ok") for r in alpaca_rows[:5]])
    typo = tmp_path / "typo-cache"
    out = _cli("rate", str(data), "--judge", "alpagasus", "--model", MINI, "--cache-dir", str(typo), "--dry-run")
    assert "5 calls to send" in out and f"no winnow cache at {typo} yet" in out
    out = _cli("audit", "stability", str(data), "--judge", "alpagasus", "--model", MINI, "--cache-dir", str(typo),
               "--dry-run")
    assert "dry run: 15 calls" in out
    out = _cli("report", str(data), "-o", str(tmp_path / "r.html"), "--cache-dir", str(typo))
    assert f"no winnow cache at {typo}" in out
    assert not typo.exists()


# 6. --status names the real statuses


@pytest.mark.parametrize("command", ["ls", "prune", "stats", "export"])
def test_an_unknown_status_is_refused_with_the_real_ones_named(judged_twice, command):
    _, cache, _, _, _ = judged_twice
    extra = ["-o", "x.jsonl"] if command == "export" else []
    out = _cli("cache", command, "--cache-dir", str(cache), "--status", "okay", *extra, code=2)
    assert "--status 'okay'" in out and "ok, judge_failed" in out
    assert len(JudgmentCache(cache)) == 64  # prune deleted nothing


# 7. the README describes the tag column as it is


def test_the_readme_names_every_field_of_the_tag_summary():
    from winnow.cache.store import SLIM_FIELDS

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert SLIM_FIELDS == ("status", "parsed", "error", "key", "parser_version")
    assert "status, parsed\nvalue, error, key and parser version" in readme


# 8. a judgment first cached under another sample id


def test_show_explains_content_addressing_and_ls_contains_finds_the_record(
    alpaca_rows, write_jsonl, fake_server, tmp_path
):
    rows = alpaca_rows[:3]
    first = write_jsonl([dict(r, id=f"a{i}") for i, r in enumerate(rows)], "first.jsonl")
    again = write_jsonl([dict(r, id=f"b{i}") for i, r in enumerate(rows)], "again.jsonl")
    kw = {"api_base": fake_server.url, "cache_dir": tmp_path / "c", "id_column": "id"}
    rate(first, ["alpagasus"], MINI, **kw)
    second = rate(again, ["alpagasus"], MINI, **kw)
    assert second.stats.cache_hits == 3  # the same content: the same records, still under a0..a2
    out = _cli("cache", "show", "b1", "--cache-dir", str(tmp_path / "c"), code=2)
    assert "content-addressed" in out and "--contains" in out
    text = rows[1]["instruction"][:30]
    listing = _cli("cache", "ls", "--cache-dir", str(tmp_path / "c"), "--contains", text)
    assert "1 of 1 judgments" in listing and "a1" in listing
    key = second.keys["alpagasus"][1][0]
    assert key[:16] in listing
    shown = _cli("cache", "show", key[:16], "--cache-dir", str(tmp_path / "c"))
    assert key in shown
