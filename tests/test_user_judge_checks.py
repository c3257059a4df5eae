"""User judges: the checks that used to pass silently.

Templates whose text never reaches the model (a typo'd or unknown block, text outside the
blocks, no user block, a user message that renders empty for a row), undefined variables
reported on the right line, output fields colliding with winnow's own columns, two judges
sharing a name, replies that are no valid judgment (out of the declared range or type, NaN,
``true`` as a number, two different JSON objects), load-time values of the wrong type, and
cache keys that split on ``0`` vs ``0.0``.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import pytest

from winnow.api import rate
from winnow.cache.key import KeyTemplate, cache_key, key_parts
from winnow.engine import EngineSettings
from winnow.judges.alpagasus import AlpagasusJudge
from winnow.judges.base import ParseError
from winnow.judges.user import load_user_judge
from winnow.prompts import TemplateProblem, builtin_template
from winnow.types import Reply, Sample, Turn, Usage

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "judges" / "helpfulness"
MODEL = "openai/fake-model"
SETTINGS = EngineSettings(backoff_initial=0.01, concurrency=4)

FIELDS_YAML = """\
name: clarity
output:
  fields:
    score: {type: number, min: 1, max: 5}
    reason: string
"""
PROMPT = "{% block user %}Rate.\n<data>{{ instruction | data }}\n{{ output | data }}</data>{% endblock %}\n"
SCHEMA_YAML = """\
name: checks
output:
  schema:
    type: object
    properties:
      score: {type: number}
      verdict: {type: string, enum: [good, bad]}
      issues: {type: array, items: {type: string}}
      reason: {type: string}
    required: [score]
score_range: [1, 10]
"""


def _folder(tmp_path: Path, yaml_text: str = FIELDS_YAML, prompt: str = PROMPT, name: str = "judge") -> Path:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (folder / "judge.yaml").write_text(yaml_text, encoding="utf-8")
    (folder / "prompt.jinja").write_text(prompt, encoding="utf-8")
    return folder


def _reply(text: str) -> Reply:
    return Reply(text=text, usage=Usage())


def _load_error(tmp_path: Path, yaml_text: str = FIELDS_YAML, prompt: str = PROMPT) -> str:
    folder = _folder(tmp_path, yaml_text, prompt)
    with pytest.raises(TemplateProblem) as info:
        load_user_judge(folder, {})
    assert str(folder) in str(info.value)  # every load error names the file
    return str(info.value)


# ----------------------------------------------------------------------------- template blocks

@pytest.mark.parametrize(("prompt", "expected"), [
    ("{% block system %}Judge.{% endblock %}\n{% block usr %}Q: {{ instruction }}{% endblock %}\n",
     "prompt.jinja line 2: unknown block 'usr': only {% block system %} and {% block user %} are sent"),
    ("{% block user %}Q: {{ instruction }}\nA: {{ output }}{% endblock %}\n{% block assistant %}{\"score\": "
     "{% endblock %}\n", "prompt.jinja line 3: unknown block 'assistant'"),
    ("IMPORTANT: reply in JSON.\n{% block user %}Q: {{ instruction }}{% endblock %}\n",
     "prompt.jinja line 1: text or tags outside {% block system %} and {% block user %} are never sent"),
    ("{% block user %}Q: {{ instruction }}{% endblock %}\n\n\nRate 1-10.\n", "prompt.jinja line 4: text or tags"),
    ("{% block user %}Q{% endblock %}{{ instruction }}", "prompt.jinja line 1: text or tags outside"),
    ("{% block system %}Rate {{ instruction }}.{% endblock %}\n", "no {% block user %}"),
    ("{% block user %}{% block system %}S{% endblock %}Q{% endblock %}", "blocks cannot be nested"),
])
def test_templates_that_would_lose_text_fail_at_load(tmp_path, prompt, expected):
    assert expected in _load_error(tmp_path, prompt=prompt)


def test_block_typo_sends_no_request(tmp_path, write_jsonl, fake_server):
    folder = _folder(tmp_path, prompt="{% block system %}Rate.{% endblock %}{% block usr %}{{ instruction }}"
                                      "{% endblock %}")
    data = write_jsonl([{"instruction": f"Q{i}?", "input": "", "output": "A"} for i in range(3)])
    with pytest.raises(TemplateProblem, match="unknown block 'usr'"):
        rate(data, [str(folder)], MODEL, api_base=fake_server.url, cache_dir=tmp_path / "c", settings=SETTINGS)
    assert fake_server.total == 0


def test_plain_templates_and_builtins_pass_the_block_check(tmp_path):
    from winnow.prompts import check_blocks

    load_user_judge(_folder(tmp_path, prompt="Q: {{ instruction }}\nA: {{ output }}\n"), {})  # no blocks: user msg
    load_user_judge(_folder(tmp_path, prompt="{# note #}\n{% block system %}S{% endblock %}\n\n"
                                             "{% block user %}{{ instruction }}{% endblock %}\n"), {})
    for path in glob.glob(str(ROOT / "winnow" / "prompts" / "*.jinja")):
        check_blocks(builtin_template(os.path.basename(path)))


def test_a_user_message_that_renders_empty_is_failed_without_a_request(tmp_path, write_jsonl, fake_server):
    folder = _folder(tmp_path, prompt="{% block system %}Rate.{% endblock %}\n"
                                      "{% block user %}{% if input %}{{ input | data }}{% endif %}{% endblock %}\n")
    fake_server.script("has input", '{"score": 4, "reason": "fine"}')
    data = write_jsonl([{"instruction": "Q", "input": "has input", "output": "A"},
                        {"instruction": "Q", "input": "", "output": "A"},
                        {"instruction": "Q", "input": "  \n ", "output": "A"}])
    result = rate(data, [str(folder)], MODEL, api_base=fake_server.url, api_key="sk-test", cache_dir=tmp_path / "c",
                  settings=SETTINGS)
    assert [r["clarity_status"] for r in result.rows] == ["ok", "judge_failed", "judge_failed"]
    assert "user message renders empty" in result.rows[1]["clarity_error"]
    assert fake_server.total == 1
    assert all(m["content"].strip() for req in fake_server.requests for m in req.body["messages"])


# ----------------------------------------------------------------------------- variables and lines

def test_an_undefined_variable_is_reported_on_the_line_that_uses_it(tmp_path):
    prompt = "Rate the response below.\nQ: {{ instruction | data }}\nA: {{ response | data }}\n"
    message = _load_error(tmp_path, prompt=prompt)
    assert "prompt.jinja line 3: the template uses 'response'" in message  # line 1 only has the word


def test_a_missing_row_column_fails_the_row_with_the_template_line(tmp_path, write_jsonl, fake_server):
    folder = _folder(tmp_path, prompt="Rate.\nCategory: {{ row.category }}\nQ: {{ instruction | data }}\n")
    data = write_jsonl([{"instruction": "Q", "input": "", "output": "A"}])
    result = rate(data, [str(folder)], MODEL, api_base=fake_server.url, api_key="sk-test", cache_dir=tmp_path / "c",
                  settings=SETTINGS)
    error = result.rows[0]["clarity_error"]
    assert result.rows[0]["clarity_status"] == "judge_failed"
    assert "prompt.jinja line 2" in error and "category" in error
    assert fake_server.total == 0


# ----------------------------------------------------------------------------- names

@pytest.mark.parametrize("yaml_text", [
    FIELDS_YAML + "    status: {type: string, enum: [safe, unsafe]}\n",
    FIELDS_YAML.replace("reason: string", "error: string"),
    SCHEMA_YAML.replace("reason: {type: string}", "status: {type: string}"),
])
def test_fields_named_like_winnows_own_columns_are_refused(tmp_path, yaml_text):
    message = _load_error(tmp_path, yaml_text)
    assert "is reserved" in message and "<judge>_status" in message


def test_two_judges_with_one_name_are_refused_before_any_request(tmp_path, write_jsonl, fake_server):
    first = _folder(tmp_path, name="a")
    second = _folder(tmp_path, name="b")  # another folder, the same `name: clarity`
    data = write_jsonl([{"instruction": "Q", "input": "", "output": "A"}])
    with pytest.raises(ValueError, match="clarity named twice"):
        rate(data, [str(first), str(second)], MODEL, api_base=fake_server.url, cache_dir=tmp_path / "c",
             settings=SETTINGS)
    assert fake_server.total == 0


# ----------------------------------------------------------------------------- JSON-schema replies

def test_json_schema_replies_are_checked_against_the_schema_and_range(tmp_path):
    judge = load_user_judge(_folder(tmp_path, SCHEMA_YAML), {})
    good = judge.parse(_reply('{"score": 7, "verdict": "good", "issues": ["a"], "reason": "x"}'))
    assert good == {"score": 7.0, "verdict": "good", "issues": ["a"], "reason": "x"}
    assert judge.parse(_reply('{"score": 7}')) == {"score": 7.0, "verdict": None, "issues": None, "reason": None}
    for text, expected in [
        ('{"score": 50, "verdict": "good"}', "field 'score': must be at most 10"),  # score_range
        ('{"score": 0}', "field 'score': must be at least 1"),
        ('{"score": 5, "issues": [1, {"a": 2}]}', "field 'issues.0': must be a string"),  # items
        ('{"score": NaN}', "field 'score': must be a finite number"),
        ('{"score": Infinity}', "field 'score': must be a finite number"),
        ('{"score": true}', "field 'score': must be a finite number, got true"),
        ('{"score": "7"}', "field 'score': must be a finite number"),
        ('{"score": 5, "verdict": "meh"}', "field 'verdict': must be one of good, bad"),
        ('{"score": 4, "reason": "ok"} {"score": 2, "reason": "no"}', "different JSON objects"),
        ('{"verdict": "good"}', "field 'score': required"),
    ]:
        with pytest.raises(ParseError, match=expected):
            judge.parse(_reply(text))


def test_json_schema_integers_and_closed_objects(tmp_path):
    yaml_text = SCHEMA_YAML.replace("score: {type: number}", "score: {type: integer}").replace(
        "    required: [score]\n", "    required: [score]\n    additionalProperties: false\n")
    judge = load_user_judge(_folder(tmp_path, yaml_text), {})
    assert judge.parse(_reply('{"score": 5.0}'))["score"] == 5  # 5.0 is an integer in JSON Schema
    with pytest.raises(ParseError, match="must be an integer"):
        judge.parse(_reply('{"score": 5.5}'))
    with pytest.raises(ParseError, match="field 'extra': not in the schema"):
        judge.parse(_reply('{"score": 5, "extra": 1}'))


@pytest.mark.parametrize(("yaml_text", "expected"), [
    (SCHEMA_YAML.replace("required: [score]", "required: [score, isues]"),
     "line 10: output.schema.required: required names 'isues', which is not a property"),
    (SCHEMA_YAML.replace("    required: [score]\n", "    required: [score]\n    allOf: []\n"),
     "unsupported schema key 'allOf'"),
    (SCHEMA_YAML.replace("items: {type: string}", "items: {type: string, pattern: x}"),
     "unsupported schema key 'pattern'"),
    (SCHEMA_YAML.replace("verdict: {type: string, enum: [good, bad]}", "verdict: {type: integer, enum: [good, bad]}"),
     "enum value 'good' is not an integer"),
    (SCHEMA_YAML.replace("score: {type: number}", "score: {type: number, minimum: 0}"),
     "score_range low end 1 contradicts the bound 0"),
])
def test_json_schemas_that_could_not_be_enforced_fail_at_load(tmp_path, yaml_text, expected):
    assert expected in _load_error(tmp_path, yaml_text)


# ----------------------------------------------------------------------------- strict replies

def test_field_list_replies_are_strict(tmp_path):
    judge = load_user_judge(_folder(tmp_path), {})
    assert judge.parse(_reply('{"score": 4, "reason": "ok"}')) == {"score": 4.0, "reason": "ok"}
    assert judge.parse(_reply('{"score": 4, "reason": "ok"}\n{"score": 4, "reason": "ok"}'))["score"] == 4.0
    for text, expected in [
        ('{"score": true, "reason": "ok"}', "must be a finite number, got true"),
        ('{"score": NaN, "reason": "ok"}', "must be a finite number"),
        ('{"score": 4, "reason": 5}', "field 'reason': must be a string"),
        ('Here: {"score": 4, "reason": "ok"} or maybe {"score": 2, "reason": "no"}', "different JSON objects"),
    ]:
        with pytest.raises(ParseError, match=expected):
            judge.parse(_reply(text))


@pytest.mark.parametrize("structured", [False, True])
def test_alpagasus_refuses_true_and_two_different_json_scores(structured):
    judge = AlpagasusJudge(structured=structured)
    assert judge.parse(_reply('{"score": 4, "explanation": "ok"}'))["score"] == 4.0
    with pytest.raises(ParseError, match="different JSON objects"):
        judge.parse(_reply('{"score": 4, "explanation": "ok"} {"score": 2, "explanation": "no"}'))
    with pytest.raises(ParseError):
        judge.parse(_reply('{"score": true, "explanation": "ok"}'))


def test_two_different_json_replies_end_judge_failed(tmp_path, write_jsonl, fake_server):
    two = '{"score": 4, "reason": "ok"} {"score": 2, "reason": "no"}'
    fake_server.script("CASE_TWO", two)
    fake_server.script("could not be used", two)  # the re-ask gets the same reply
    data = write_jsonl([{"instruction": "CASE_TWO: say hello", "input": "", "output": "hello"}])
    result = rate(data, [str(_folder(tmp_path))], MODEL, api_base=fake_server.url, api_key="sk-test",
                  cache_dir=tmp_path / "c", settings=SETTINGS)
    assert result.rows[0]["clarity_status"] == "judge_failed"
    assert "different JSON objects" in result.rows[0]["clarity_error"]
    assert result.rows[0]["clarity_score"] is None


# ----------------------------------------------------------------------------- load-time types

@pytest.mark.parametrize(("yaml_text", "expected"), [
    (FIELDS_YAML.replace("reason: string", 'reason: {type: string, required: "false"}'),
     "output.fields.reason.required: required must be true or false, not 'false'"),
    (FIELDS_YAML.replace("score: {type: number, min: 1, max: 5}", "score: {type: integer, enum: [low, mid, high]}"),
     "enum value 'low' is not an integer"),
    (FIELDS_YAML.replace("score: {type: number, min: 1, max: 5}", "score: {type: number, enum: [1, true]}"),
     "enum value true is not a finite number"),
    (FIELDS_YAML.replace("score: {type: number, min: 1, max: 5}", "score: {type: number, min: true}"),
     "min needs a number or integer field and a numeric bound"),
    (FIELDS_YAML.replace("min: 1, max: 5", "max: 5") + "score_range: [true, 5]\n",
     "line 6: score_range must be [low, high]"),
    (FIELDS_YAML + "score_range: [0, 10]\n", "score_range low end 0 contradicts the bound 1"),
])
def test_values_of_the_wrong_type_fail_at_load(tmp_path, yaml_text, expected):
    assert expected in _load_error(tmp_path, yaml_text)


def test_an_integer_enum_field_is_strict(tmp_path):
    yaml_text = FIELDS_YAML.replace("score: {type: number, min: 1, max: 5}", "score: {type: integer, enum: [1, 2, 3]}")
    judge = load_user_judge(_folder(tmp_path, yaml_text), {})
    assert judge.score_field == "score"
    assert judge.parse(_reply('{"score": 2, "reason": "x"}'))["score"] == 2
    with pytest.raises(ParseError, match="must be an integer, got true"):
        judge.parse(_reply('{"score": true, "reason": "x"}'))
    with pytest.raises(ParseError, match="must be one of 1, 2, 3"):
        judge.parse(_reply('{"score": 4, "reason": "x"}'))


# ----------------------------------------------------------------------------- cache keys

SAMPLE = Sample(id="r1", turns=[Turn("user", "Name a prime number."), Turn("assistant", "7 is prime.")],
                row={"instruction": "Name a prime number.", "input": "", "output": "7 is prime."}, index=0,
                alpaca=("Name a prime number.", "", "7 is prime."))


def _key(judge, params=None) -> str:
    spec = judge.plan(SAMPLE)
    fixed = {"judge": judge.name, "fingerprint": judge.fingerprint, "model": "openai/gpt-4o-mini",
             "api_base": "https://api.openai.com/v1", "params": params if params is not None else judge.params}
    key = cache_key(key_parts(**fixed, schema=spec.schema, messages=spec.messages))
    assert KeyTemplate(**fixed).key(spec.messages, spec.schema) == key
    return key


@pytest.mark.parametrize(("structured", "expected"), [
    (False, "wj1-20c69a742d79a016d0bbeda7880e046a"),  # computed before the params normalisation
    (True, "wj1-2da795dec0384cd15a1da9418b791780"),
])
def test_builtin_cache_keys_are_unchanged(structured, expected):
    assert _key(AlpagasusJudge(structured=structured)) == expected


def test_equal_sampling_values_give_equal_keys():
    judge = AlpagasusJudge()
    assert _key(judge, {"temperature": 0, "max_tokens": 256}) == _key(judge, {"temperature": 0.0, "max_tokens": 256})
    assert _key(judge, {"temperature": 0.0, "max_tokens": 256.0}) == _key(judge)
    assert _key(judge, {"temperature": 0.0, "top_p": 1, "seed": 3}) == _key(judge, {"temperature": 0.0, "top_p": 1.0,
                                                                                      "seed": 3.0})
    assert _key(judge, {"temperature": 0.5, "max_tokens": 256}) != _key(judge)


def test_the_example_judge_fingerprint_and_schema_are_unchanged():
    """The reply checks moved off the pydantic model; the schema it sends (and so its keys) did not."""
    judge = load_user_judge(EXAMPLE, {})
    assert judge.fingerprint == "1a9c24bc6c67e86b"
    assert judge.schema["properties"]["score"] == {"description": "1 = useless, 10 = could not be more helpful",
                                                   "maximum": 10, "minimum": 1, "title": "Score", "type": "number"}
