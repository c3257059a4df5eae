"""``winnow tags normalize`` as a user runs it: twice on one file, and with values it cannot take."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from winnow.cli.app import app
from winnow.tagging import normalize

TAGS = [["Math", "math"], ["maths", "Coding"], ["coding", "Python code"], ["python code", "Math"]] * 5


def _tagged(tmp_path: Path) -> Path:
    path = tmp_path / "tagged.jsonl"
    rows = [{"instruction": f"q{i}", "output": "a", "instag_tags": tags, "instag_complexity": len(tags)}
            for i, tags in enumerate(TAGS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_normalising_twice_starts_again_from_the_judges_tags(tmp_path):
    first = normalize(_tagged(tmp_path), output=tmp_path / "n1.jsonl", alpha=None, association=False)
    assert not first.from_raw
    once = _read(tmp_path / "n1.jsonl")
    assert [r["instag_tags_raw"] for r in once] == TAGS
    assert once[0]["instag_tags"] != TAGS[0]  # "Math", "math" became one tag
    result = CliRunner().invoke(app, ["tags", "normalize", str(tmp_path / "n1.jsonl"), "-o", str(tmp_path / "n2.jsonl"),
                                      "--alpha", "off", "--no-association"])
    assert result.exit_code == 0, result.output
    assert "normalised before" in result.output and "alpha off, min support off (--no-association)" in result.output
    twice = _read(tmp_path / "n2.jsonl")
    assert [r["instag_tags_raw"] for r in twice] == TAGS  # the judge's tags survive the second run
    assert [r["instag_tags"] for r in twice] == [r["instag_tags"] for r in once]
    assert (tmp_path / "n2.tagmap.json").is_file()


def test_counts_it_cannot_take_are_named_by_their_option(tmp_path):
    data = _tagged(tmp_path)
    for args, flag in ((["--alpha", "foo"], "--alpha"), (["--alpha", "0"], "--alpha"),
                       (["--min-support", "0.5"], "--min-support")):
        result = CliRunner().invoke(app, ["tags", "normalize", str(data), "-o", str(tmp_path / "n.jsonl"), *args])
        assert result.exit_code == 2, result.output
        assert flag in result.output and "whole count of at least 1" in result.output
        assert "invalid literal" not in result.output
    assert not (tmp_path / "n.jsonl").exists()


def test_an_output_name_it_cannot_write_is_refused_before_the_work(tmp_path):
    result = CliRunner().invoke(app, ["tags", "normalize", str(_tagged(tmp_path)), "-o", str(tmp_path / "n.xlsx")])
    assert result.exit_code == 2 and "cannot write a '.xlsx' file" in result.output
    select = CliRunner().invoke(app, ["select", str(_tagged(tmp_path)), "--method", "instag", "--budget", "2",
                                      "-o", str(tmp_path / "s.jsonl.gz")])
    assert select.exit_code == 2 and "compressed output is not supported" in select.output
