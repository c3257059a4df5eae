"""The CLI's answer to user mistakes: one ``error: ...`` line naming the file or option, exit 2 for
bad input or setup (nothing sent), 1 for a failed request; never a traceback, never a silent drop.

Permissions are tested without chmod (the tests may run as root, which ignores modes): an output
under a regular file (NotADirectoryError) or a folder as the output (IsADirectoryError).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from winnow.cli.app import app

SCORES = [3.0, 3.5, 3.5, 4.0, 4.5, 5.0, 5.0, 3.0, 3.5, 4.5]
KEY = "sk-winnow-robustness-test"


def run(*args: str | Path) -> tuple[int, str]:
    """(exit code, everything printed); a raised exception other than typer's exit fails the test."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"raised {result.exception!r}\n{result.output}") from result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def _rated(tmp_path: Path, name: str = "rated.jsonl") -> Path:
    rows = [{"instruction": f"question {i}", "input": "", "output": f"answer {i}", "alpagasus_score": s,
             "alpagasus_status": "ok", "instag_tags": ["math", f"t{i % 3}"], "instag_status": "ok"}
            for i, s in enumerate(SCORES)]
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _cache(tmp_path: Path) -> Path:
    from winnow.cache import JudgmentCache

    folder = tmp_path / "cache"
    JudgmentCache(folder).close()
    return folder


def _writing(tmp_path: Path, data: Path, output: Path) -> dict[str, list[str | Path]]:
    """Every command that writes a file, writing ``output``."""
    return {
        "select": ["select", data, "--top-k", "3", "-o", output],
        "report": ["report", data, "-o", output, "--no-cache"],
        "tags normalize": ["tags", "normalize", data, "-o", output, "--alpha", "off", "--no-association"],
        "cache export": ["cache", "export", "--cache-dir", _cache(tmp_path), "-o", output],
        "compare --report": ["compare", data, data, "-j", "alpagasus", "--report", output],
    }


COMMANDS = ["select", "report", "tags normalize", "cache export", "compare --report"]


# 1. an output that cannot be written: one line, exit 2, before the work, no temp file left


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_as_the_output_is_refused_in_one_line(tmp_path, command):
    data = _rated(tmp_path)
    folder = tmp_path / "adir.jsonl"
    folder.mkdir()
    code, out = run(*_writing(tmp_path, data, folder)[command])
    assert code == 2, out
    assert f"error: {'--report: ' if command == 'compare --report' else ''}cannot write {folder}: it is a folder" in out
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_under_a_regular_file_is_refused_in_one_line(tmp_path, command):
    data = _rated(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    output = afile / "x.jsonl"
    code, out = run(*_writing(tmp_path, data, output)[command])
    assert code == 2, out
    assert f"cannot write {output}: {afile} is a file, not a folder" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_output_folder_is_refused_by_every_command_and_not_created(tmp_path, command):
    data = _rated(tmp_path)
    output = tmp_path / "nosuch" / "x.jsonl"
    code, out = run(*_writing(tmp_path, data, output)[command])
    assert code == 2, out
    assert f"cannot write {output}: folder {tmp_path / 'nosuch'} does not exist" in out
    assert not (tmp_path / "nosuch").exists()


def test_tags_normalize_checks_its_tag_map_before_the_work(tmp_path):
    data = _rated(tmp_path)
    (tmp_path / "n.tagmap.json").mkdir()
    code, out = run("tags", "normalize", data, "-o", tmp_path / "n.jsonl", "--alpha", "off")
    assert code == 2 and "the tag map: cannot write" in out and "it is a folder" in out
    assert not (tmp_path / "n.jsonl").exists()


def test_a_failed_write_is_an_output_error_and_leaves_no_temp_file(tmp_path):
    """After the checks (a folder appearing meanwhile, a full disk): the writers say which output,
    and remove their temp file (``report`` used to leave ``OUT.tmp`` behind)."""
    from winnow.audit.report import write_report
    from winnow.data.writers import OutputError, write_rows

    target = tmp_path / "out.html"
    target.mkdir()
    with pytest.raises(OutputError, match=f"cannot write {target}: Is a directory"):
        write_report([{"alpagasus_score": 4.0, "alpagasus_status": "ok"}], judges=["alpagasus"], settings={},
                     output=target)
    with pytest.raises(OutputError, match="cannot write"):
        write_rows([{"a": 1}], target, "jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.html"]


# 4. an output that is the input


@pytest.mark.parametrize("command", ["select", "report"])
def test_an_output_that_is_the_input_is_refused(tmp_path, command, monkeypatch):
    data = _rated(tmp_path)
    before = data.read_bytes()
    monkeypatch.chdir(tmp_path)
    args = _writing(tmp_path, data, Path("./sub/../rated.jsonl"))[command]
    (tmp_path / "sub").mkdir()
    code, out = run(*args)
    assert code == 2, out
    assert "is the input file" in out and "would replace the input" in out
    assert data.read_bytes() == before


def test_cache_export_into_the_cache_folder_is_refused(tmp_path):
    cache = _cache(tmp_path)
    code, out = run("cache", "export", "--cache-dir", cache, "-o", cache / "cache.db")
    assert code == 2 and "inside the cache folder" in out
    assert (cache / "cache.db").read_bytes().startswith(b"SQLite format")


# 2. --layout checked in one place


@pytest.mark.parametrize("args", [
    ["report", "{data}", "-o", "{tmp}/r.html"],
    ["judges", "show", "alpagasus", "--data", "{data}"],
    ["judges", "show", "alpagasus"],
    ["agree", "{data}", "--labels", "alpagasus_score", "-j", "alpagasus"],
    ["inspect", "{data}"],
    ["select", "{data}", "--top-k", "2", "-o", "{tmp}/s.jsonl"],
    ["tags", "normalize", "{data}", "-o", "{tmp}/n.jsonl"],
    ["compare", "{data}", "{data}", "-j", "alpagasus"],
], ids=lambda a: " ".join(a[:2]))
def test_an_unknown_layout_is_refused_by_every_command(tmp_path, args):
    data = _rated(tmp_path)
    filled = [a.format(data=data, tmp=tmp_path) for a in args]
    code, out = run(*filled, "--layout", "bogus")
    assert code == 2, out
    assert "error: --layout bogus: unknown layout; use one of alpaca, sharegpt" in out
    assert not (tmp_path / "r.html").exists() and not (tmp_path / "s.jsonl").exists()


# 3. embedding failures and --api-key


@pytest.mark.parametrize("command", ["select", "tags"])
def test_embedding_without_credentials_is_one_line_exit_2(tmp_path, monkeypatch, command):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    data = _rated(tmp_path)
    args = (["select", data, "--method", "deita", "--score-column", "alpagasus_score"] if command == "select"
            else ["tags", "normalize", data, "--alpha", "off"])
    code, out = run(*args, "-o", tmp_path / "out.jsonl", "--embed-model", "openai/fake-embed",
                    "--cache-dir", tmp_path / "cache")
    assert code == 2, out
    assert "error: no usable API key" in out and "--api-key" in out
    assert not (tmp_path / "out.jsonl").exists()


def test_a_failed_embedding_request_is_one_line_exit_1(tmp_path):
    data = _rated(tmp_path)
    code, out = run("select", data, "--method", "deita", "--score-column", "alpagasus_score", "-o",
                    tmp_path / "out.jsonl", "--embed-model", "openai/fake-embed", "--api-base",
                    "http://127.0.0.1:1/v1", "--cache-dir", tmp_path / "cache")
    assert code == 1, out
    assert "error: the request failed" in out
    assert not (tmp_path / "out.jsonl").exists()


def test_api_key_is_sent_for_embeddings_and_written_nowhere(tmp_path, fake_server):
    fake_server.api_key = KEY  # the server now answers 401 to any other key
    data = _rated(tmp_path)
    cache = tmp_path / "cache"
    common = ["--embed-model", "openai/fake-embed", "--api-base", fake_server.url, "--api-key", KEY,
              "--cache-dir", cache]
    code, out = run("select", data, "--method", "deita", "--score-column", "alpagasus_score", "--budget", "3",
                    "-o", tmp_path / "s.jsonl", *common)
    assert code == 0, out
    code, out = run("tags", "normalize", data, "-o", tmp_path / "n.jsonl", "--alpha", "off", *common)
    assert code == 0, out
    assert fake_server.requests and all(r.path.endswith("/embeddings") for r in fake_server.requests)
    assert KEY not in out
    for path in [p for p in tmp_path.rglob("*") if p.is_file()]:
        assert KEY.encode() not in path.read_bytes(), path


def test_api_key_without_an_embedding_model_is_refused(tmp_path):
    code, out = run("select", _rated(tmp_path), "--top-k", "2", "-o", tmp_path / "s.jsonl", "--api-key", KEY)
    assert code == 2 and "--api-key is the key for --embed-model" in out and KEY not in out


# 5. a hint names only options the command has


def _bad_json(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    good = "".join(json.dumps({"instruction": f"q{i}", "output": "a", "alpagasus_score": s,
                               "alpagasus_status": "ok"}) + "\n" for i, s in enumerate(SCORES))
    path.write_text(good + "{not json\n", encoding="utf-8")
    return path


def test_inspect_of_an_unreadable_file_does_not_suggest_on_bad_row(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"instruction": "café", "output": "x"}]'.encode("latin-1"))
    code, out = run("inspect", path)
    assert code == 2 and "invalid UTF-8" in out
    assert "--on-bad-row" not in out and "hint: fix the row" in out


@pytest.mark.parametrize("args", [
    ["agree", "{bad}", "--labels", "alpagasus_score", "-j", "alpagasus"],
    ["audit", "bias", "{bad}", "-j", "alpagasus", "--resamples", "0"],
    ["compare", "{bad}", "{bad}", "-j", "alpagasus"],
    ["select", "{bad}", "--top-k", "2", "-o", "{tmp}/s.jsonl"],
], ids=lambda a: " ".join(a[:2]))
def test_a_bad_row_hint_does_not_suggest_a_flag_the_command_lacks(tmp_path, args):
    bad = _bad_json(tmp_path)
    code, out = run(*[a.format(bad=bad, tmp=tmp_path) for a in args])
    assert code == 2, out
    assert "line 11" in out and "invalid JSON" in out
    assert "--on-bad-row" not in out and "hint: fix the row" in out


def test_rate_still_suggests_on_bad_row_skip(tmp_path):
    code, out = run("rate", _bad_json(tmp_path), "-j", "alpagasus", "-m", "openai/fake-model", "--api-base",
                    "http://127.0.0.1:1/v1", "-o", tmp_path / "out.jsonl", "--cache-dir", tmp_path / "cache")
    assert code == 2, out
    assert "pass --on-bad-row skip" in out


# 6. agree does not drop bad rows silently


def test_agree_fails_on_a_bad_row_like_select(tmp_path):
    bad = _bad_json(tmp_path)
    code, out = run("agree", bad, "--labels", "alpagasus_score", "-j", "alpagasus")
    assert code == 2 and f"error: {bad}: line 11: invalid JSON" in out
    assert "rows" not in out.split("\n", 1)[0].split("invalid JSON")[0]  # no "10 rows" figures printed


def test_agree_refuses_a_line_that_is_not_an_object(tmp_path):
    path = _rated(tmp_path)
    path.write_text(path.read_text() + "[1, 2]\n")
    code, out = run("agree", path, "--labels", "alpagasus_score", "-j", "alpagasus")
    assert code == 2 and "line 11: expected an object, got list" in out


# 7. agree's default label scale


def test_agree_a_column_with_itself_agrees_perfectly_and_says_which_label_scale(tmp_path):
    code, out = run("agree", _rated(tmp_path), "--labels", "alpagasus_score", "-j", "alpagasus", "--resamples", "0")
    assert code == 0, out
    assert "label scale: 0-5 (the judge's scale: every label fits in it" in out
    assert "mae: 0.0000" in out and "quadratic_kappa: 1.0000" in out


def test_agree_labels_off_the_judges_scale_use_their_observed_range_and_say_so(tmp_path):
    path = tmp_path / "tenths.jsonl"
    rows = [{"alpagasus_score": s, "alpagasus_status": "ok", "human": s * 2} for s in SCORES]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out = run("agree", path, "--labels", "human", "-j", "alpagasus", "--resamples", "0")
    assert code == 0 and "label scale: 6-10 (the labels' observed range" in out
    code, out = run("agree", path, "--labels", "human", "-j", "alpagasus", "--resamples", "0", "--label-scale", "0,10")
    assert code == 0 and "label scale: 0-10 (--label-scale)" in out and "mae: 0.0000" in out


def test_agree_pass_fail_labels_still_span_the_judges_scale():
    from winnow.audit.agree import agree_rows

    rows = [{"alpagasus_score": s, "alpagasus_status": "ok", "human": "pass" if s >= 4.5 else "fail"}
            for s in SCORES]
    result = agree_rows(rows, "alpagasus_score", "human", threshold=4.5, resamples=0)
    assert result.selection["labels_kept"] == result.selection["judge_kept"] == 4
    assert result.label_scale.startswith("0-1 (pass/fail labels")


# 8. nits


@pytest.mark.parametrize("args", [
    ["agree", "{data}", "--labels", "alpagasus_score", "-j", "alpagasus", "--threshold", "nan"],
    ["report", "{data}", "-o", "{tmp}/r.html", "--threshold", "inf"],
    ["audit", "stability", "{data}", "-j", "alpagasus", "-m", "openai/fake-model", "--threshold", "nan"],
    ["compare", "{data}", "{data}", "-j", "alpagasus", "--threshold", "nan"],
], ids=lambda a: " ".join(a[:2]))
def test_a_threshold_that_is_not_finite_is_refused(tmp_path, args):
    code, out = run(*[a.format(data=_rated(tmp_path), tmp=tmp_path) for a in args])
    assert code == 2 and "give a finite number" in out, out


@pytest.mark.parametrize("value", ["2", "-1.5", "nan"])
def test_select_deita_threshold_is_a_cosine_similarity(tmp_path, value):
    code, out = run("select", _rated(tmp_path), "--method", "deita", "--score-column", "alpagasus_score",
                    "--threshold", value, "-o", tmp_path / "s.jsonl")
    assert code == 2 and "a cosine similarity, between -1 and 1" in out
    assert not (tmp_path / "s.jsonl").exists()


@pytest.mark.parametrize("args", [["--eps", "-1"], ["--eps", "nan"], ["--eps", "0"], ["--min-confidence", "1.5"]])
def test_tags_normalize_refuses_a_radius_or_confidence_out_of_range(tmp_path, args):
    code, out = run("tags", "normalize", _rated(tmp_path), "-o", tmp_path / "n.jsonl", *args)
    assert code == 2 and f"error: {args[0]}" in out
    assert not (tmp_path / "n.jsonl").exists()


def test_reparse_checks_status_like_cache_ls(tmp_path):
    cache = _cache(tmp_path)
    for command in (["reparse"], ["cache", "ls"]):
        code, out = run(*command, "--cache-dir", cache, "--status", "bogus")
        assert code == 2 and "--status 'bogus': a judgment's status is one of ok" in out


@pytest.mark.parametrize("command", [["cache", "ls"], ["cache", "stats"], ["cache", "show", "x"], ["reparse"]])
def test_no_cache_is_exit_2_for_cache_commands_and_reparse_alike(tmp_path, command):
    code, out = run(*command, "--cache-dir", tmp_path / "nocache")
    assert code == 2 and "no winnow cache at" in out


def test_cache_show_of_an_unknown_key_is_exit_2(tmp_path):
    code, out = run("cache", "show", "nosuch", "--cache-dir", _cache(tmp_path))
    assert code == 2 and "no judgment with key or sample id 'nosuch'" in out


@pytest.mark.parametrize("command", [["agree", "--labels", "instruction"], ["audit", "bias", "--resamples", "0"]])
def test_a_known_judge_without_its_column_is_said_as_a_missing_column(tmp_path, command):
    path = tmp_path / "plain.jsonl"
    path.write_text("".join(json.dumps({"instruction": f"q{i}", "output": "a"}) + "\n" for i in range(5)))
    code, out = run(*command[:-2] if command[0] == "audit" else command[:1], path, *command[-2:], "-j", "alpagasus")
    assert code == 2, out
    assert f"{path} has no alpagasus_score column" in out and "did you mean" not in out


@pytest.mark.parametrize(("command", "options"), [
    (("audit", "stability"), ["api_base", "api_key", "concurrency", "cache_dir", "seed"]),
    (("audit", "bias"), ["resamples"]),
    (("tags", "normalize"), ["api_base", "api_key", "cache_dir", "tags_column", "min_confidence"]),
])
def test_options_have_help_text(command, options):
    group = typer.main.get_command(app)
    cmd = group.commands[command[0]].commands[command[1]]  # type: ignore[attr-defined]
    helps = {p.name: getattr(p, "help", None) for p in cmd.params}
    assert all(helps[name] for name in options), helps


def test_select_help_states_the_default_min_score():
    cmd = typer.main.get_command(app).commands["select"]  # type: ignore[attr-defined]
    helps = {p.name: getattr(p, "help", None) or "" for p in cmd.params}
    assert "Default for threshold with no count: 4.5" in helps["min_score"]


def test_inspect_a_header_only_csv_shows_its_columns(tmp_path):
    path = tmp_path / "header.csv"
    path.write_text("instruction,output\n")
    code, out = run("inspect", path)
    assert code == 0 and "columns: instruction, output" in out
