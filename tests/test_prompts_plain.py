"""Plain-Python rendering of simple blocks (winnow.prompts.plain) matches Jinja exactly.

Every built-in template is rendered both ways over generated variables (text with fences,
braces, newlines and unicode; booleans; None; numbers); a block Jinja must render (loops,
other filters) and a missing variable go through Jinja, with Jinja's own errors.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import meta

from winnow.prompts import PromptTemplate, TemplateProblem, builtin_template, template_from_text

BUILTINS = sorted(p.name for p in resources.files("winnow.prompts").iterdir() if p.name.endswith(".jinja"))
PLAIN_ONLY = [name for name in BUILTINS if "rank" not in name]  # the rank prompts loop over items

_text = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["</data>", "<data>", "{{ x }}", "{% if %}", "\n\n", "", " ", "ünï\u2028code"]
)
_value = _text | st.booleans() | st.none() | st.integers(-5, 5)


def _jinja_messages(template: PromptTemplate, variables: dict[str, Any]) -> list[dict[str, str]]:
    """What render_messages produced before the plain path: every block through Jinja."""
    compiled = template._template
    ctx = compiled.new_context(dict(variables))
    out = []
    for role in ("system", "user"):
        if role in compiled.blocks:
            text = "".join(compiled.blocks[role](ctx)).strip("\n")
            if text:
                out.append({"role": role, "content": text})
    return out


def _names(template: PromptTemplate) -> list[str]:
    return sorted(meta.find_undeclared_variables(template._template.environment.parse(template.source)))


@pytest.mark.parametrize("name", PLAIN_ONLY)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_builtin_templates_render_as_jinja_does(name: str, data: st.DataObject) -> None:
    template = builtin_template(name)
    variables = {n: data.draw(_value, label=n) for n in _names(template)}
    assert template.render_messages(**variables) == _jinja_messages(template, variables)


def test_which_builtin_blocks_render_plain() -> None:
    for name in BUILTINS:
        template = builtin_template(name)
        variables = {n: "x" for n in _names(template)} | {"items": [{"text": "a"}]}
        template.render_messages(**variables)
        expected = {"system"} if "rank" in name else {"system", "user"}
        assert set(template._plain or {}) == expected, name


def test_a_block_jinja_must_render_still_renders() -> None:
    source = "{% block system %}S {{ who | upper }}{% endblock %}{% block user %}{{ a }} {{ a | data }}{% endblock %}"
    template = template_from_text(source, "mixed.jinja")
    messages = template.render_messages(who="me", a="</data>")
    assert messages == [{"role": "system", "content": "S ME"}, {"role": "user", "content": "</data> </ data>"}]
    assert set(template._plain or {}) == {"user"}


def test_a_missing_variable_is_jinjas_own_error() -> None:
    source = "{% block user %}\nline one\n{{ present }}\n{% if absent %}x{% endif %}\n{% endblock %}"
    template = template_from_text(source, "judge.jinja")
    with pytest.raises(TemplateProblem, match=r"judge.jinja line 4: 'absent' is undefined"):  # with its line
        template.render_messages(present="here")
    assert template._plain and "user" in template._plain  # the plain path handed it back


_BRANCHES = ("{% block system %}S{% endblock %}{% block user %}\n{% if a %}A {{ x }}{% elif b %}B {{ y | data }}"
             "{% else %}C {{ z }}{% endif %}!{% endblock %}")


@pytest.mark.parametrize("variables", [
    {"a": 1, "x": "<data>", "b": 0},  # y and z are never needed
    {"a": "", "b": True, "y": "</data>"},
    {"a": None, "b": [], "z": 3.5},
    {"a": 0, "b": 0, "z": ""},
])
def test_elif_chains_need_only_the_names_of_the_branch_taken(variables: dict[str, Any]) -> None:
    template = template_from_text(_BRANCHES, "branches.jinja")
    assert template.render_messages(**variables) == _jinja_messages(template, variables)
    assert template._messages is not None  # every block rendered by the compiled function


def test_a_name_only_in_the_globals_is_found_through_jinja() -> None:
    template = template_from_text("{% block user %}{{ q }} {{ range }}{% endblock %}", "globals.jinja")
    messages = template.render_messages(q="x")
    assert messages == _jinja_messages(template, {"q": "x"}) and messages[0]["content"].startswith("x <function")
