"""User-defined judges: a ``judge.yaml`` (plus a Jinja prompt) turned into a Judge.

Everything that can go wrong with the file is found at load time, before any request: unknown
keys (alpaca_eval's YAML was splatted into kwargs and silently ignored typos), a missing
template file (never taken as prompt text), template syntax errors, variables that are not
sample variables (found statically and by rendering a dummy sample), blocks other than
``system``/``user`` or text outside them (never sent), output fields that would collide with
winnow's own ``<name>_status``/``<name>_error`` columns, and schemas with constraints the
checks could not enforce.  Each error names the file and, where there is one, the line.
Replies are checked against the declared schema exactly (``user_schema.check_reply``).  Once
loaded, a user judge goes through the same sandbox, cache, retries, re-asks and parsing ladder
as the built-ins.

judge.yaml keys::

    name: helpfulness             # columns are <name>_<field>
    description: ...
    template: prompt.jinja        # relative to the yaml; or `prompt: <inline template>`;
                                  # default prompt.jinja beside the yaml
    output:
      fields: {score: {type: number, min: 1, max: 10}, reason: string}
      # or  schema: {type: object, properties: {...}, required: [...]}
    score_field: score            # default: the only numeric field
    score_range: [1, 10]          # bounds of score_field (also read from free-text replies)
    columns: [score, reason]      # default: every field
    params: {temperature: 0, max_tokens: 300}
    structured: false             # send the schema as structured output
    variables: [instruction, output]   # sample variables the template may use (default: all)
    needs_response: true          # default: whether the template reads `output`
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from winnow.judges.alpagasus import triplet
from winnow.judges.base import CallSpec, ParseError, SingleCallJudge, Verdict, combine_fingerprint
from winnow.judges.parsing import AmbiguousReply, extract_json, score_from_text
from winnow.judges.user_schema import (
    NUMERIC,
    OutputSpec,
    SchemaProblem,
    check_reply,
    model_from_fields,
    model_from_json_schema,
)
from winnow.prompts import PromptTemplate, TemplateProblem, check_blocks, template_from_text
from winnow.types import Reply, Sample, Turn

__all__ = ["TOP_KEYS", "VARIABLES", "UserJudge", "UserJudgeError", "load_user_judge"]

TOP_KEYS = {"name", "description", "template", "prompt", "output", "score_field", "score_range", "columns",
            "params", "structured", "variables", "needs_response"}
OUTPUT_KEYS = {"fields", "schema"}
PARAM_KEYS: dict[str, Any] = {
    "temperature": (int, float), "max_tokens": int, "top_p": (int, float), "seed": int, "stop": (str, list),
}
VARIABLES = ("instruction", "input", "output", "turns", "system", "row")
RESERVED_NAMES = {"alpagasus", "instag", "deita_complexity", "deita_quality", "deita"}
USER_VERSION = "user-judge-1"


class UserJudgeError(TemplateProblem):
    """A judge.yaml that cannot be used.  A TemplateProblem so callers that already report
    template problems before sending anything report this too."""


class _AnyRow(dict[str, Any]):
    """The dummy ``row`` of the load-time render: any column exists (real rows are checked per sample)."""

    def __missing__(self, key: str) -> str:
        return f"example {key}"


EXAMPLE = Sample(
    id="example",
    turns=[Turn("user", "Give three tips for staying healthy."),
           Turn("assistant", "Eat vegetables, sleep eight hours, and walk every day.")],
    row=_AnyRow(instruction="Give three tips for staying healthy.", input="",
                output="Eat vegetables, sleep eight hours, and walk every day."),
    index=0,
    alpaca=("Give three tips for staying healthy.", "", "Eat vegetables, sleep eight hours, and walk every day."),
)


def sample_variables(sample: Sample) -> dict[str, Any]:
    instruction, input_text, output = triplet(sample)
    return {
        "instruction": instruction,
        "input": input_text,
        "output": output,
        "turns": [{"role": t.role, "content": t.content} for t in sample.turns],
        "system": sample.system,
        "row": sample.row,
    }


class UserJudge(SingleCallJudge):
    def __init__(self, *, name: str, description: str, template: PromptTemplate, output: OutputSpec,
                 columns: list[str], score_field: str | None,
                 score_range: tuple[float, float] | None, params: dict[str, Any], structured: bool,
                 variables: tuple[str, ...], schema: dict[str, Any], source: Path) -> None:
        super().__init__()
        self.name, self.description, self.template = name, description, template
        self.output, self.model, self.types, self.columns = output, output.model, output.types, tuple(columns)
        self.score_field, self.score_range = score_field, score_range
        self.params.update(params)
        self.structured, self.variables, self.schema, self.source = structured, variables, schema, source

    @property
    def fingerprint(self) -> str:
        return combine_fingerprint(USER_VERSION, self.name, self.template.hash, self.schema, self.score_field,
                                   self.score_range, list(self.columns), self.structured)

    def render(self, sample: Sample) -> list[dict[str, str]]:
        values = sample_variables(sample)
        return self.template.render_messages(**{k: values[k] for k in self.variables})

    def format_hint(self) -> str:
        return "a JSON object with the fields " + ", ".join(self.types)

    def parse(self, reply: Reply) -> dict[str, Any]:
        """JSON object -> checked against the declared schema (``user_schema.check_reply``);
        else, for one numeric field, a free-text score.  Two different JSON objects in one reply
        are a failure, never the first one taken."""
        try:
            data = extract_json(reply.text)
        except AmbiguousReply:
            raise
        except ParseError:
            data = None
        if not isinstance(data, dict):
            data = self._free_text(reply.text)
        return check_reply(self.output, data)

    def _free_text(self, text: str) -> dict[str, Any]:
        others = [f for f in self.types if f != self.score_field]
        if self.score_field is None or any(self.types[f] is not str for f in others):
            raise ParseError(f"expected {self.format_hint()}")
        lo, hi = self.score_range or (-math.inf, math.inf)
        out: dict[str, Any] = {self.score_field: score_from_text(text, lo, hi)}
        lines = text.strip().splitlines()
        for i, field in enumerate(others):  # the explanation, like AlpaGasus: the lines after the score
            out[field] = "\n".join(lines[1:]).strip() if i == 0 else ""
        return out

    def preview(self, sample: Sample) -> list[tuple[str, list[dict[str, str]]]]:
        return [("main", self.render(sample))]

    def plan(self, sample: Sample) -> CallSpec | Verdict:
        try:
            messages = self.render(sample)
        except TemplateProblem as exc:  # e.g. {{ row.question }} on a row without that column
            return self.failed(f"template: {exc}")
        if not any(m["role"] == "user" and m["content"].strip() for m in messages):
            # e.g. {% if input %}{{ input }}{% endif %} on a row with no input: nothing to judge
            return self.failed(f"template: {self.template.name}: the user message renders empty for this row, "
                               "so there is nothing to judge; nothing was sent")
        return CallSpec(messages=messages, parse=self.parse, schema=self.schema if self.structured else None,
                        format_hint=self.format_hint())

    def values(self, parsed: dict[str, Any]) -> dict[str, Any]:
        return {c: parsed.get(c) for c in self.columns}


# ----------------------------------------------------------------------------- loading

class _Doc:
    """The parsed YAML plus the line of every key, so errors can point at the file and line."""

    def __init__(self, path: Path) -> None:
        import yaml

        self.path = path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserJudgeError(f"{path}: cannot read: {exc.strerror}") from exc
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            self.data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark is not None else ""
            raise UserJudgeError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from exc
        if not isinstance(self.data, dict):
            raise UserJudgeError(f"{path}: must be a YAML mapping of keys (name, template, output, ...)")
        self.lines: dict[str, int] = {}
        self._index(node, "")

    def _index(self, node: Any, prefix: str) -> None:
        import yaml

        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = f"{prefix}{key_node.value}"
                self.lines[key] = key_node.start_mark.line + 1
                self._index(value_node, key + ".")

    def error(self, key: str, message: str) -> UserJudgeError:
        parts = key.split(".")
        while parts and ".".join(parts) not in self.lines:
            parts.pop()
        line = self.lines.get(".".join(parts))
        return UserJudgeError(f"{self.path}{f' line {line}' if line else ''}: {message}")


def _check(doc: _Doc, condition: bool, key: str, message: str) -> None:
    if not condition:
        raise doc.error(key, message)


def _template(doc: _Doc, base: Path, data: dict[str, Any]) -> PromptTemplate:
    _check(doc, not ("template" in data and "prompt" in data), "prompt", "give either template or prompt, not both")
    if "prompt" in data:
        _check(doc, isinstance(data["prompt"], str) and data["prompt"].strip() != "", "prompt", "must be text")
        name = f"{doc.path} (inline prompt from line {doc.lines['prompt']})"
        template = template_from_text(data["prompt"], name)
    else:
        ref = data.get("template", "prompt.jinja")
        _check(doc, isinstance(ref, str) and ref.strip() != "", "template", "must be a file path")
        path = (base / ref).resolve()
        _check(doc, path.is_file(), "template", f"template file {path} not found")
        from winnow.prompts import template_from_file

        template = template_from_file(path)
    check_blocks(template)  # only system/user blocks are sent: anything else would vanish
    return template


def _check_variables(doc: _Doc, template: PromptTemplate, allowed: tuple[str, ...]) -> set[str]:
    """The sample variables the template uses; an undeclared one is a UserJudgeError."""
    from jinja2 import meta

    from winnow.prompts import _environment  # the sandbox env: it knows the `data` filter

    tree = _environment().parse(template.source)
    used = meta.find_undeclared_variables(tree)
    for var in sorted(used - set(allowed)):
        line = _first_use(tree, var)
        hint = "a declared sample variable" if set(allowed) != set(VARIABLES) else "a sample variable"
        raise UserJudgeError(f"{template.name}{f' line {line}' if line else ''}: the template uses '{var}', "
                             f"which is not {hint} (use {', '.join(allowed)})")
    template.render_messages(**{k: v for k, v in sample_variables(EXAMPLE).items() if k in allowed})
    return set(used)


def _first_use(tree: Any, var: str) -> int | None:
    """The line where the template first reads ``var``: from the parsed template's Name nodes,
    not a text search (which found the word in prose, a comment or another name first)."""
    from jinja2 import nodes

    lines = [node.lineno for node in tree.find_all(nodes.Name) if node.name == var and node.ctx == "load"]
    return min(lines) if lines else None


def load_user_judge(path: Path, options: dict[str, Any] | None = None) -> UserJudge:
    """Load ``judge.yaml`` (or a folder holding one); ``options['structured']`` overrides the file."""
    options = options or {}
    path = Path(path)
    yaml_path = path / "judge.yaml" if path.is_dir() else path
    if not yaml_path.is_file():
        raise UserJudgeError(f"{yaml_path}: no such judge file (a judge folder needs a judge.yaml)")
    doc = _Doc(yaml_path)
    data = doc.data
    for key in data:
        _check(doc, key in TOP_KEYS, str(key), f"unknown key '{key}' (allowed: {', '.join(sorted(TOP_KEYS))})")
    name = data.get("name")
    _check(doc, isinstance(name, str) and re.fullmatch(r"[a-z][a-z0-9_]*", name or "") is not None, "name",
           "name is required: lower-case letters, digits and '_', starting with a letter")
    _check(doc, name not in RESERVED_NAMES, "name", f"'{name}' is a built-in judge's name; pick another")
    output = data.get("output")
    _check(doc, isinstance(output, dict) and len(output) == 1 and set(output) <= OUTPUT_KEYS, "output",
           "output needs exactly one of 'fields' (a field list) or 'schema' (a JSON Schema)")
    try:
        if "fields" in output:
            spec = model_from_fields(f"{name}_output", output["fields"])
        else:
            spec = model_from_json_schema(f"{name}_output", output["schema"])
        types = spec.types
        score_field = data.get("score_field")
        numeric = [f for f, t in types.items() if t in NUMERIC]
        if score_field is None and len(numeric) == 1:
            score_field = numeric[0]
        _check(doc, score_field is None or score_field in numeric, "score_field",
               f"score_field must name a numeric field ({', '.join(numeric) or 'there is none'})")
        score_range = data.get("score_range")
        if score_range is not None:
            _check(doc, score_field is not None, "score_range", "score_range needs a numeric score_field")
            spec = _apply_range(doc, name, output, spec, str(score_field), score_range)
    except SchemaProblem as exc:
        raise doc.error(exc.key, f"{exc.key}: {exc}") from None
    schema = output["schema"] if "schema" in output else spec.model.model_json_schema()
    columns = data.get("columns", list(types))
    _check(doc, isinstance(columns, list) and bool(columns), "columns", "columns must be a list of field names")
    for col in columns:
        _check(doc, col in types, "columns", f"column '{col}' is not an output field ({', '.join(types)})")
    params = data.get("params", {})
    _check(doc, isinstance(params, dict), "params", "params must be a mapping")
    for key, value in params.items():
        _check(doc, key in PARAM_KEYS, f"params.{key}", f"unknown param '{key}' (allowed: {', '.join(PARAM_KEYS)})")
        _check(doc, isinstance(value, PARAM_KEYS[key]) and not isinstance(value, bool), f"params.{key}",
               f"param '{key}' has the wrong type")
    structured = data.get("structured", False)
    _check(doc, isinstance(structured, bool), "structured", "structured must be true or false")
    if options.get("structured") is not None:
        structured = bool(options["structured"])
    variables = data.get("variables", list(VARIABLES))
    _check(doc, isinstance(variables, list), "variables", "variables must be a list")
    for var in variables:
        _check(doc, var in VARIABLES, "variables", f"unknown variable '{var}' (use {', '.join(VARIABLES)})")
    description = data.get("description", "")
    _check(doc, isinstance(description, str), "description", "description must be text")
    template = _template(doc, yaml_path.parent, data)
    used = _check_variables(doc, template, tuple(variables))
    # what it reads: a template that shows the response needs one; `needs_response` overrides
    # (a template that walks `turns` may or may not judge the answers)
    needs_response = data.get("needs_response", "output" in used)
    _check(doc, isinstance(needs_response, bool), "needs_response", "needs_response must be true or false")
    lo_hi = (float(score_range[0]), float(score_range[1])) if score_range else _field_range(schema, score_field)
    judge = UserJudge(name=name, description=description, template=template, output=spec,
                      columns=list(columns), score_field=score_field, score_range=lo_hi, params=params,
                      structured=structured, variables=tuple(variables), schema=schema, source=yaml_path)
    judge.needs_response = needs_response
    return judge


def _apply_range(doc: _Doc, name: str, output: dict[str, Any], spec: OutputSpec, field: str,
                 score_range: Any) -> OutputSpec:
    """The output with ``score_range`` enforced on the score field.

    A field list gets it as the field's min/max (so it is also in the schema sent for structured
    output, as before); a JSON Schema is sent as written and the range is enforced on replies.
    A range that contradicts the field's own bounds is refused: which one held would be a guess.
    """
    _check(doc, isinstance(score_range, list) and len(score_range) == 2
           and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in score_range)
           and score_range[0] <= score_range[1],
           "score_range", "score_range must be [low, high]: two numbers (true/false are not numbers), low <= high")
    lo, hi = score_range
    declared = spec.fields[field]
    for own, wanted, label in ((declared.minimum, lo, "low"), (declared.maximum, hi, "high")):
        _check(doc, own is None or own == wanted, "score_range",
               f"score_range {label} end {wanted} contradicts the bound {own} declared on field '{field}'")
    if "fields" not in output:
        return spec.with_range(field, lo, hi)
    fields = dict(output["fields"])  # apply the range to the field and rebuild the model
    fdef = fields[field]
    fdef = dict({"type": fdef} if isinstance(fdef, str) else fdef)
    fdef.setdefault("min", lo)
    fdef.setdefault("max", hi)
    fields[field] = fdef
    return model_from_fields(f"{name}_output", fields)


def _field_range(schema: dict[str, Any], field: str | None) -> tuple[float, float] | None:
    """Bounds of the score field from the schema (for reading free-text scores)."""
    if field is None:
        return None
    prop = (schema.get("properties") or {}).get(field) or {}
    lo, hi = prop.get("minimum"), prop.get("maximum")
    if lo is None and hi is None:
        return None
    return (float(lo) if lo is not None else -math.inf, float(hi) if hi is not None else math.inf)


def user_judge_text(judge: UserJudge) -> str:
    """The judge as one self-contained judge.yaml (its template inline, ``structured`` as run), for
    a worker that has no copy of the user's files (``--engine ray``).  Loading it back gives the
    same fingerprint, so the worker's records are the driver's."""
    import yaml

    data = dict(yaml.safe_load(judge.source.read_text(encoding="utf-8")))
    data.pop("template", None)
    data["prompt"] = judge.template.source
    data["structured"] = judge.structured
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def user_judge_from_text(text: str) -> UserJudge:
    """A judge from ``user_judge_text``, loaded through the same checks as the user's file."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="winnow-judge-") as folder:
        path = Path(folder) / "judge.yaml"
        path.write_text(text, encoding="utf-8")
        return load_user_judge(path)
