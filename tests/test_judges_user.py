"""User-defined judges: load-time errors (before any request), parsing, the example judge end to end,
and the ``winnow judges`` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from winnow.api import rate
from winnow.engine import EngineSettings
from winnow.judges.base import ParseError
from winnow.judges.user import UserJudgeError, load_user_judge
from winnow.prompts import TemplateProblem
from winnow.types import Reply, Usage

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "judges" / "helpfulness"
MODEL = "openai/fake-model"
SETTINGS = EngineSettings(backoff_initial=0.01, concurrency=4)

PROMPT = "{% block user %}Rate this answer.\n<data>{{ instruction | data }}\n{{ output | data }}</data>{% endblock %}\n"
YAML = """\
name: clarity
description: How clear the answer is.
template: prompt.jinja
output:
  fields:
    score: {type: number, min: 1, max: 5}
    reason: string
params: {temperature: 0, max_tokens: 100}
"""


def _judge_dir(tmp_path: Path, yaml_text: str = YAML, prompt: str = PROMPT) -> Path:
    folder = tmp_path / "clarity"
    folder.mkdir(exist_ok=True)
    (folder / "judge.yaml").write_text(yaml_text, encoding="utf-8")
    (folder / "prompt.jinja").write_text(prompt, encoding="utf-8")
    return folder


def _reply(text: str) -> Reply:
    return Reply(text=text, usage=Usage())


# ----------------------------------------------------------------------------- load-time errors

@pytest.mark.parametrize(("yaml_text", "prompt", "expected"), [
    (YAML + "temprature: 0.2\n", PROMPT, "judge.yaml line 9: unknown key 'temprature'"),
    (YAML.replace("params: {temperature: 0,", "params: {temp: 0,"), PROMPT, "judge.yaml line 8: unknown param 'temp'"),
    (YAML.replace("reason: string", "reason: {type: string, maxlen: 3}"), PROMPT,
     "judge.yaml line 7: output.fields.reason.maxlen: unknown key 'maxlen'"),
    (YAML.replace("type: number", "type: float"), PROMPT, "unknown type 'float'"),
    (YAML.replace("template: prompt.jinja", "template: missing.jinja"), PROMPT, "line 3: template file"),
    (YAML.replace("name: clarity", "name: instag"), PROMPT, "built-in judge's name"),
    (YAML + "columns: [score, grade]\n", PROMPT, "line 9: column 'grade' is not an output field"),
    (YAML + "variables: [instruction, answer]\n", PROMPT, "unknown variable 'answer'"),
    ("name: clarity\n  bad: [indent\n", PROMPT, "judge.yaml line 2: invalid YAML"),
    (YAML, "{% block user %}\nline two\n{{ output | data }\n{% endblock %}", "prompt.jinja line 3"),
    (YAML, "{% block user %}\nAnswer:\n{{ answer }}\n{% endblock %}",
     "prompt.jinja line 3: the template uses 'answer', which is not a sample variable"),
    (YAML + "variables: [instruction]\n", PROMPT,
     "the template uses 'output', which is not a declared sample variable"),
    (YAML, "{% block user %}{{ instruction.title.nope }}{% endblock %}", "prompt.jinja"),  # found by the dummy render
])
def test_bad_judge_files_fail_at_load_naming_the_file(tmp_path, yaml_text, prompt, expected):
    folder = _judge_dir(tmp_path, yaml_text, prompt)
    with pytest.raises(TemplateProblem) as info:
        load_user_judge(folder, {})
    assert expected in str(info.value)
    assert str(folder) in str(info.value)


def test_load_errors_send_no_request(tmp_path, write_jsonl, fake_server):
    data = write_jsonl([{"instruction": "Say hi.", "input": "", "output": "Hi!"}])
    folder = _judge_dir(tmp_path, YAML + "colums: [score]\n")
    with pytest.raises(UserJudgeError, match="unknown key 'colums'"):
        rate(data, [str(folder)], MODEL, api_base=fake_server.url, cache_dir=tmp_path / "c", settings=SETTINGS)
    folder = _judge_dir(tmp_path, YAML, "{% block user %}{{ reply }}{% endblock %}")
    with pytest.raises(UserJudgeError, match="'reply'"):
        rate(data, [str(folder)], MODEL, api_base=fake_server.url, cache_dir=tmp_path / "c", settings=SETTINGS)
    assert fake_server.total == 0


def test_inline_prompt_and_json_schema_output(tmp_path):
    yaml_text = """\
name: topic
prompt: "{% block user %}Topic of: {{ row.question | data }}{% endblock %}"
output:
  schema:
    type: object
    properties:
      topic: {type: string, enum: [math, history, other]}
      confidence: {type: number, minimum: 0, maximum: 1}
    required: [topic, confidence]
structured: true
variables: [row]
"""
    path = tmp_path / "topic.yaml"
    path.write_text(yaml_text)
    judge = load_user_judge(path, {})
    assert judge.structured and judge.score_field == "confidence" and judge.score_range == (0.0, 1.0)
    assert judge.parse(_reply('{"topic": "math", "confidence": 0.9}')) == {"topic": "math", "confidence": 0.9}
    with pytest.raises(ParseError, match="field 'topic'"):
        judge.parse(_reply('{"topic": "art", "confidence": 0.9}'))
    assert load_user_judge(path, {"structured": False}).structured is False  # the CLI option wins


# ----------------------------------------------------------------------------- parsing

def test_parse_json_then_free_text_score():
    judge = load_user_judge(EXAMPLE, {})
    assert judge.parse(_reply('```json\n{"score": 8, "reason": "Does the job."}\n```')) == {
        "score": 8.0, "reason": "Does the job."}
    assert judge.parse(_reply("7\nClear and correct.")) == {"score": 7.0, "reason": "Clear and correct."}
    assert judge.parse(_reply("seven\nFine."))["score"] == 7.0  # number words, like the built-ins
    with pytest.raises(ParseError, match="field 'score'"):
        judge.parse(_reply('{"score": 11, "reason": "too high"}'))  # out of range: re-asked by the engine
    with pytest.raises(ParseError):
        judge.parse(_reply("12\nway off the scale"))
    with pytest.raises(ParseError):
        judge.parse(_reply("I liked it."))


# ----------------------------------------------------------------------------- end to end

def test_example_judge_rates_real_rows_and_rerun_is_free(alpaca_rows, write_jsonl, fake_server, tmp_path):
    rows = alpaca_rows[:6]
    data = write_jsonl(rows)
    fake_server.script(rows[0]["instruction"][:40], '{"score": 9, "reason": "Complete and correct."}')
    fake_server.script(rows[1]["instruction"][:40], "Score: 42\nNonsense.")
    fake_server.script("could not be used", "4\nFixed.")
    kw = {"api_base": fake_server.url, "api_key": "sk-test", "cache_dir": tmp_path / "c", "settings": SETTINGS}
    result = rate(data, [str(EXAMPLE)], MODEL, output=tmp_path / "out.jsonl", **kw)
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["helpfulness_status"] for r in out] == ["ok"] * 6
    assert out[0]["helpfulness_score"] == 9.0 and out[0]["helpfulness_reason"] == "Complete and correct."
    assert out[1]["helpfulness_score"] == 4.0  # out of range, re-asked once
    assert all(1 <= r["helpfulness_score"] <= 10 for r in out)
    assert "helpfulness_reason" in result.columns
    assert fake_server.total == 7
    first = fake_server.requests[0].body["messages"][-1]["content"]
    assert "<data>" in first and "JSON object" in first
    rate(data, [str(EXAMPLE)], MODEL, **kw)
    assert fake_server.total == 7


def test_row_variable_missing_in_a_row_fails_that_row_only(write_jsonl, fake_server, tmp_path):
    yaml_text = YAML.replace("template: prompt.jinja\n", "")  # default: prompt.jinja beside the yaml
    folder = _judge_dir(tmp_path, yaml_text, "{% block user %}{{ row.question | data }}{% endblock %}")
    data = write_jsonl([{"instruction": "A?", "output": "B", "question": "Why?"}, {"instruction": "C?", "output": "D"}])
    result = rate(data, [str(folder)], MODEL, api_base=fake_server.url, api_key="sk-test",
                  cache_dir=tmp_path / "c", settings=SETTINGS)
    assert result.rows[0]["clarity_status"] == "ok"
    assert result.rows[1]["clarity_status"] == "judge_failed" and "question" in result.rows[1]["clarity_error"]
    assert fake_server.total == 1


# ----------------------------------------------------------------------------- CLI

def _cli(*args: str):
    import winnow.cli.judges  # noqa: F401  (registers the commands until the lead wires it in)
    from winnow.cli import app

    return CliRunner().invoke(app, list(args))


def test_judges_list_names_every_judge_with_columns():
    result = _cli("judges", "list")
    assert result.exit_code == 0, result.output
    for name in ("alpagasus", "instag", "deita-complexity", "deita-quality"):
        assert name in result.output
    assert "instag_complexity" in result.output and "deita_quality_scores" in result.output


def test_judges_show_renders_a_row_of_a_file(write_jsonl, tmp_path):
    data = write_jsonl([{"instruction": "First?", "input": "", "output": "1"},
                        {"instruction": "Second question here?", "input": "", "output": "2"}])
    result = _cli("judges", "show", "instag", "--data", str(data), "--row", "2")
    assert result.exit_code == 0, result.output
    assert "winnow/prompts/instag.jinja" in result.output and "Second question here?" in result.output
    assert '"explanation"' in result.output
    user = _cli("judges", "show", str(EXAMPLE))
    assert user.exit_code == 0 and "Give three tips" in user.output and '"maximum": 10' in user.output
    bad = _cli("judges", "show", "instag", "--data", str(data), "--row", "5")
    assert bad.exit_code == 2 and "past the last readable row" in bad.output


def test_judges_list_does_not_import_litellm():
    code = ("import sys; from winnow.cli import app; import winnow.cli.judges; "
            "sys.argv=['winnow','judges','list']\ntry: app()\nexcept SystemExit: pass\n"
            "assert 'litellm' not in sys.modules, 'litellm imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "instag" in proc.stdout
