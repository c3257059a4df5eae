"""The parsing ladder and the template sandbox, without a server."""

from __future__ import annotations

import pytest

from winnow.judges.base import ParseError
from winnow.judges.parsing import expected_digit_score, extract_json, score_from_text
from winnow.prompts import TemplateProblem, data_block, template_from_text
from winnow.types import TokenLogprob


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("4.5\nGood answer.", 4.5),
        ("4.5/5\nGood.", 4.5),
        ("**4**\nok", 4.0),
        ("Score: 4.5\nexplained", 4.5),  # methods.md P-A2: the number after the label, not its first char
        ("The answer is fine.\nscore: 3", 3.0),
        ("```\n5\n```", 5.0),
        ("four\nreasonable", 4.0),
        ("Four and a half - strong", 4.5),
        ("0\nwrong", 0.0),
    ],
)
def test_score_from_text(text, score):
    assert score_from_text(text, 0, 5) == score


@pytest.mark.parametrize("text", ["", "I cannot rate this.", "7\nexcellent", "Score: 9"])
def test_score_from_text_refuses_to_guess(text):
    with pytest.raises(ParseError):
        score_from_text(text, 0, 5)


def test_extract_json_variants():
    assert extract_json('[{"tag": "a"}]') == [{"tag": "a"}]
    assert extract_json('Here:\n```json\n{"score": 3}\n```') == {"score": 3}
    assert extract_json('"[{\\"tag\\": \\"x\\"}]"') == [{"tag": "x"}]  # JSON inside a JSON string
    assert extract_json('Sure! {"a": {"b": "}"}} bye') == {"a": {"b": "}"}}
    with pytest.raises(ParseError):
        extract_json("no json here")


def test_expected_digit_score_renormalises_over_digits():
    import math

    lp = [TokenLogprob("4", math.log(0.5), {"4": math.log(0.5), "5": math.log(0.25), "x": math.log(0.25)})]
    # digits only: p4 = 2/3, p5 = 1/3 -> 4*2/3 + 5/3 = 13/3
    assert expected_digit_score(lp, range(1, 7)) == pytest.approx(13 / 3)
    assert expected_digit_score(None, range(1, 7)) is None
    assert expected_digit_score([TokenLogprob("hello", -0.1, {"hi": -2.0})], range(1, 7)) is None


def test_sandbox_blocks_python_internals():
    for source in (
        "{{ ''.__class__.__mro__ }}",
        "{{ x.__init__.__globals__ }}",
        "{% for i in range(10**9) %}{% endfor %}",
    ):
        tmpl = template_from_text(source, "evil.jinja")
        with pytest.raises(TemplateProblem, match=r"evil\.jinja"):
            tmpl.render(x="s")


def test_template_errors_name_file_and_line():
    with pytest.raises(TemplateProblem, match=r"my\.jinja line 2"):
        template_from_text("ok\n{% if %}\n", "my.jinja")
    with pytest.raises(TemplateProblem, match="undefined"):
        template_from_text("{{ missing }}", "t.jinja").render()


def test_data_filter_defuses_fence():
    assert data_block("a </data> b <DATA x=1>") == "a </ data> b < DATA x=1>"
