"""Output schemas of user judges: a small YAML field list or a JSON Schema.

Why our own mapping rather than a JSON Schema validator: a deliberately small vocabulary means
an unsupported construct is an error at load time, with the file and key, instead of a
constraint that is silently not enforced.  Each schema becomes two things: a pydantic model,
whose JSON Schema is what a field-list judge sends as structured output (and part of its
fingerprint, so it is built exactly as before), and ``FieldSpec``s, which check every reply.

Why replies are not checked by the pydantic model: its lax mode reads ``true`` as the number 1,
lets NaN through as a number and ``Literal[1]`` match ``True``, and ``list[Any]`` ignores
``items``; a reply that is not a valid judgment must fail with the reason, never be coerced
into one.  ``check_reply`` enforces exactly what the schema declares: types (a bool is no
number), finite numbers, bounds, enums, item types, required fields and, where the schema
says so, no extra fields.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from winnow.judges.base import ParseError

FIELD_TYPES: dict[str, Any] = {
    "string": str,
    "number": float,
    "integer": int,
    "boolean": bool,
    "list": list[str],
}
FIELD_KEYS = {"type", "min", "max", "description", "enum", "required"}
JSON_TYPES: dict[str, Any] = {
    "string": str,
    "number": float,
    "integer": int,
    "boolean": bool,
    "array": list[Any],
    "object": dict[str, Any],
}
JSON_SCHEMA_KEYS = {"type", "properties", "required", "additionalProperties", "title", "description", "$schema"}
JSON_PROPERTY_KEYS = {"type", "minimum", "maximum", "description", "enum", "items", "title", "default"}
JSON_ITEM_KEYS = {"type", "minimum", "maximum", "description", "enum", "title"}
NUMERIC = (float, int)
# winnow writes <judge>_status and <judge>_error for every judge: a field of that name would collide
RESERVED_FIELDS = ("status", "error")


class SchemaProblem(ValueError):
    """A schema the loader cannot use; ``key`` is the dotted key path it concerns."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What one field of a reply must be.  ``kind`` is a JSON Schema type name."""

    kind: str
    required: bool = True
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[Any, ...] | None = None
    items: FieldSpec | None = None


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """A judge's output: the model (for the schema sent), field types, and the reply checks."""

    model: type[BaseModel]
    types: dict[str, Any]
    fields: dict[str, FieldSpec]
    closed: bool = False  # additionalProperties: false

    def with_range(self, field: str, lo: float, hi: float) -> OutputSpec:
        """The same output with ``field`` bounded by the judge's score_range (JSON-Schema judges:
        their schema is sent as the user wrote it, the range is enforced on the reply)."""
        spec = self.fields[field]
        bounded = replace(spec, minimum=lo if spec.minimum is None else spec.minimum,
                          maximum=hi if spec.maximum is None else spec.maximum)
        return replace(self, fields={**self.fields, field: bounded})


# ----------------------------------------------------------------------------- reply checks

def accepts(kind: str, value: Any) -> bool:
    """Whether ``value`` is of JSON Schema type ``kind``: a bool is no number, NaN and inf are
    not numbers, and 5.0 is an integer (as JSON Schema has it)."""
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return False
    return kind == "number" or isinstance(value, int) or float(value).is_integer()


_NAMES = {"string": "a string", "number": "a finite number", "integer": "an integer", "boolean": "true or false",
          "array": "a list", "object": "an object"}


def check_value(spec: FieldSpec, value: Any, where: str) -> Any:
    """``value`` checked against ``spec`` (numbers as float, integers as int); ParseError naming
    the field otherwise."""
    if not accepts(spec.kind, value):
        raise ParseError(f"field '{where}': must be {_NAMES[spec.kind]}, got {_shown(value)}")
    if spec.kind == "number":
        value = float(value)
    elif spec.kind == "integer":
        value = int(value)
    if spec.enum is not None and value not in spec.enum:
        raise ParseError(f"field '{where}': must be one of {', '.join(map(str, spec.enum))}, got {_shown(value)}")
    if spec.minimum is not None and value < spec.minimum:
        raise ParseError(f"field '{where}': must be at least {spec.minimum:g}, got {value:g}")
    if spec.maximum is not None and value > spec.maximum:
        raise ParseError(f"field '{where}': must be at most {spec.maximum:g}, got {value:g}")
    if spec.items is not None:
        value = [check_value(spec.items, item, f"{where}.{i}") for i, item in enumerate(value)]
    return value


def check_reply(output: OutputSpec, data: Any) -> dict[str, Any]:
    """The reply's fields, each checked; a missing optional field (or its null) is None."""
    if not isinstance(data, dict):
        raise ParseError(f"field 'reply': must be an object, got {_shown(data)}")
    if output.closed:
        extra = sorted(str(k) for k in data if k not in output.fields)
        if extra:
            raise ParseError(f"field '{extra[0]}': not in the schema, which allows no other fields")
    out: dict[str, Any] = {}
    for name, spec in output.fields.items():
        value = data.get(name)
        if value is None:
            if spec.required:
                raise ParseError(f"field '{name}': required" + (" (null given)" if name in data else ""))
            out[name] = None
            continue
        out[name] = check_value(spec, value, name)
    return out


def _shown(value: Any) -> str:
    text = "null" if value is None else "true" if value is True else "false" if value is False else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ----------------------------------------------------------------------------- loading

def _check_name(fname: Any, key: str) -> None:
    if not isinstance(fname, str) or not fname.isidentifier():
        raise SchemaProblem(key, f"field name {fname!r} must be an identifier")
    if fname in RESERVED_FIELDS:
        raise SchemaProblem(key, f"the field name '{fname}' is reserved: winnow writes <judge>_status and "
                                 "<judge>_error itself; rename the field")


def _check_enum(kind: str, enum: Any, key: str) -> tuple[Any, ...] | None:
    """The enum as a tuple; every value must be of the field's type (``type: integer`` with
    ``enum: [low, high]`` is refused, not turned into a text field still counted as the score)."""
    if enum is None:
        return None
    if not isinstance(enum, list) or not enum:
        raise SchemaProblem(key, "enum must be a non-empty list")
    for value in enum:
        if not accepts(kind, value):
            raise SchemaProblem(key, f"enum value {_shown(value)} is not {_NAMES[kind]} (the field's type is {kind})")
    return tuple(enum)


def _check_bounds(kind: str, lo: Any, hi: Any, key: str, names: tuple[str, str]) -> None:
    for bound, label in ((lo, names[0]), (hi, names[1])):
        if bound is None:
            continue
        if kind not in ("number", "integer") or not accepts("number", bound):
            raise SchemaProblem(key, f"{label} needs a number or integer field and a numeric bound "
                                     f"(got {_shown(bound)})")
    if lo is not None and hi is not None and lo > hi:
        raise SchemaProblem(key, f"{names[0]} {lo} is above {names[1]} {hi}")


def _field(py_type: Any, lo: Any, hi: Any, description: str | None, enum: Any, required: bool) -> Any:
    """The pydantic field for the schema the judge sends (built as it always was: the fingerprint)."""
    if enum is not None:
        py_type = Literal[tuple(enum)]
    info = Field(default=... if required else None, ge=lo, le=hi, description=description)
    return (py_type if required else py_type | None, info)


def model_from_fields(name: str, fields: Any) -> OutputSpec:
    """``{score: {type: number, min: 1, max: 10}, reason: string}`` -> the judge's output."""
    if not isinstance(fields, dict) or not fields:
        raise SchemaProblem("output.fields", "must be a mapping of field name to type")
    spec: dict[str, Any] = {}
    types: dict[str, Any] = {}
    checks: dict[str, FieldSpec] = {}
    for fname, fdef in fields.items():
        key = f"output.fields.{fname}"
        _check_name(fname, key)
        if isinstance(fdef, str):
            fdef = {"type": fdef}
        if not isinstance(fdef, dict):
            raise SchemaProblem(key, "must be a type name or a mapping with 'type'")
        unknown = sorted(set(fdef) - FIELD_KEYS)
        if unknown:
            allowed = ", ".join(sorted(FIELD_KEYS))
            raise SchemaProblem(f"{key}.{unknown[0]}", f"unknown key '{unknown[0]}' (allowed: {allowed})")
        ftype = fdef.get("type", "string")
        if not isinstance(ftype, str) or ftype not in FIELD_TYPES:
            raise SchemaProblem(f"{key}.type", f"unknown type {ftype!r} (use {', '.join(FIELD_TYPES)})")
        required = fdef.get("required", True)
        if not isinstance(required, bool):
            raise SchemaProblem(f"{key}.required", f"required must be true or false, not {_shown(required)}")
        kind = "array" if ftype == "list" else ftype
        lo, hi = fdef.get("min"), fdef.get("max")
        enum = _check_enum("string" if ftype == "list" else kind, fdef.get("enum"), key)
        if ftype == "list" and enum is not None:
            raise SchemaProblem(f"{key}.enum", "enum applies to one value, not to a list")
        if enum is not None and (lo is not None or hi is not None):
            raise SchemaProblem(key, "give either enum or min/max, not both")
        _check_bounds(kind, lo, hi, key, ("min", "max"))
        types[fname] = FIELD_TYPES[ftype]
        checks[fname] = FieldSpec(kind, required, lo, hi, enum, FieldSpec("string") if ftype == "list" else None)
        spec[fname] = _field(FIELD_TYPES[ftype], lo, hi, fdef.get("description"), enum, required)
    return OutputSpec(create_model(name, **spec), types, checks)


def _json_field(pdef: Any, key: str, required: bool, allowed: set[str]) -> FieldSpec:
    """One property (or ``items``) of a JSON Schema as a FieldSpec, refusing what it cannot enforce."""
    if not isinstance(pdef, dict):
        raise SchemaProblem(key, "must be a schema mapping")
    unknown = sorted(set(pdef) - allowed)
    if unknown:
        raise SchemaProblem(f"{key}.{unknown[0]}", f"unsupported schema key '{unknown[0]}' in a user judge "
                                                   f"(supported: {', '.join(sorted(allowed))})")
    kind = pdef.get("type", "string")
    if not isinstance(kind, str) or kind not in JSON_TYPES:
        raise SchemaProblem(f"{key}.type", f"unsupported type {kind!r} (use {', '.join(JSON_TYPES)})")
    enum = _check_enum(kind, pdef.get("enum"), key)
    lo, hi = pdef.get("minimum"), pdef.get("maximum")
    _check_bounds(kind, lo, hi, key, ("minimum", "maximum"))
    items = None
    if "items" in pdef:
        if kind != "array":
            raise SchemaProblem(f"{key}.items", "items needs type: array")
        items = _json_field(pdef["items"], f"{key}.items", True, JSON_ITEM_KEYS)
    return FieldSpec(kind, required, lo, hi, enum, items)


def model_from_json_schema(name: str, schema: Any) -> OutputSpec:
    """A flat JSON Schema object (typed properties, min/max, enum, items, required,
    additionalProperties) -> the judge's output."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise SchemaProblem("output.schema", "must be a JSON Schema with type: object")
    unknown = sorted(set(schema) - JSON_SCHEMA_KEYS)
    if unknown:
        raise SchemaProblem(f"output.schema.{unknown[0]}", f"unsupported schema key '{unknown[0]}' in a user judge "
                                                           f"(supported: {', '.join(sorted(JSON_SCHEMA_KEYS))})")
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        raise SchemaProblem("output.schema.properties", "must map each field to its schema")
    required = schema.get("required", list(props))
    if not isinstance(required, list):
        raise SchemaProblem("output.schema.required", "must be a list of field names")
    for fname in required:
        if fname not in props:
            raise SchemaProblem("output.schema.required", f"required names '{fname}', which is not a property "
                                                          f"({', '.join(map(str, props))})")
    closed = schema.get("additionalProperties", True)
    if not isinstance(closed, bool):
        raise SchemaProblem("output.schema.additionalProperties", "additionalProperties must be true or false")
    spec: dict[str, Any] = {}
    types: dict[str, Any] = {}
    checks: dict[str, FieldSpec] = {}
    for fname, pdef in props.items():
        key = f"output.schema.properties.{fname}"
        _check_name(fname, key)
        field = _json_field(pdef, key, fname in required, JSON_PROPERTY_KEYS)
        types[fname] = JSON_TYPES[field.kind]
        checks[fname] = field
        spec[fname] = _field(JSON_TYPES[field.kind], field.minimum, field.maximum, pdef.get("description"),
                             field.enum, field.required)
    return OutputSpec(create_model(name, **spec), types, checks, closed=not closed)
