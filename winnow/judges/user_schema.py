"""Output schemas of user judges: a small YAML field list or a JSON Schema, as a pydantic model.

Why our own mapping rather than a JSON Schema validator: the model doubles as the validator of
replies and as the schema sent for structured output, and a deliberately small vocabulary means
an unsupported construct is an error at load time, with the file and key, instead of a
constraint that is silently not enforced.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

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
JSON_PROPERTY_KEYS = {"type", "minimum", "maximum", "description", "enum", "items", "title", "default"}
NUMERIC = (float, int)


class SchemaProblem(ValueError):
    """A schema the loader cannot use; ``key`` is the dotted key path it concerns."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _field(py_type: Any, lo: Any, hi: Any, description: str | None, enum: Any, required: bool, key: str) -> Any:
    if enum is not None:
        if not isinstance(enum, list) or not enum:
            raise SchemaProblem(key, "enum must be a non-empty list")
        py_type = Literal[tuple(enum)]
    for bound, label in ((lo, "min"), (hi, "max")):
        if bound is not None and (py_type not in NUMERIC or not isinstance(bound, int | float)):
            raise SchemaProblem(key, f"{label} needs a number or integer field and a numeric bound")
    if lo is not None and hi is not None and lo > hi:
        raise SchemaProblem(key, f"min {lo} is above max {hi}")
    info = Field(default=... if required else None, ge=lo, le=hi, description=description)
    return (py_type if required else py_type | None, info)


def model_from_fields(name: str, fields: Any) -> tuple[type[BaseModel], dict[str, Any]]:
    """``{score: {type: number, min: 1, max: 10}, reason: string}`` -> (model, field types)."""
    if not isinstance(fields, dict) or not fields:
        raise SchemaProblem("output.fields", "must be a mapping of field name to type")
    spec: dict[str, Any] = {}
    types: dict[str, Any] = {}
    for fname, fdef in fields.items():
        key = f"output.fields.{fname}"
        if not isinstance(fname, str) or not fname.isidentifier():
            raise SchemaProblem(key, f"field name {fname!r} must be an identifier")
        if isinstance(fdef, str):
            fdef = {"type": fdef}
        if not isinstance(fdef, dict):
            raise SchemaProblem(key, "must be a type name or a mapping with 'type'")
        unknown = sorted(set(fdef) - FIELD_KEYS)
        if unknown:
            allowed = ", ".join(sorted(FIELD_KEYS))
            raise SchemaProblem(f"{key}.{unknown[0]}", f"unknown key '{unknown[0]}' (allowed: {allowed})")
        ftype = fdef.get("type", "string")
        if ftype not in FIELD_TYPES:
            raise SchemaProblem(f"{key}.type", f"unknown type '{ftype}' (use {', '.join(FIELD_TYPES)})")
        types[fname] = FIELD_TYPES[ftype]
        spec[fname] = _field(
            FIELD_TYPES[ftype], fdef.get("min"), fdef.get("max"), fdef.get("description"), fdef.get("enum"),
            bool(fdef.get("required", True)), key,
        )
    return create_model(name, **spec), types


def model_from_json_schema(name: str, schema: Any) -> tuple[type[BaseModel], dict[str, Any]]:
    """A flat JSON Schema object (typed properties, min/max, enum, required) -> (model, field types)."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object":
        raise SchemaProblem("output.schema", "must be a JSON Schema with type: object")
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        raise SchemaProblem("output.schema.properties", "must map each field to its schema")
    required = schema.get("required", list(props))
    if not isinstance(required, list):
        raise SchemaProblem("output.schema.required", "must be a list of field names")
    spec: dict[str, Any] = {}
    types: dict[str, Any] = {}
    for fname, pdef in props.items():
        key = f"output.schema.properties.{fname}"
        if not isinstance(pdef, dict):
            raise SchemaProblem(key, "must be a schema mapping")
        unknown = sorted(set(pdef) - JSON_PROPERTY_KEYS)
        if unknown:
            raise SchemaProblem(f"{key}.{unknown[0]}", f"unsupported schema key '{unknown[0]}' in a user judge")
        ptype = pdef.get("type", "string")
        if ptype not in JSON_TYPES:
            raise SchemaProblem(f"{key}.type", f"unsupported type {ptype!r} (use {', '.join(JSON_TYPES)})")
        types[fname] = JSON_TYPES[ptype]
        spec[fname] = _field(
            JSON_TYPES[ptype], pdef.get("minimum"), pdef.get("maximum"), pdef.get("description"),
            pdef.get("enum"), fname in required, key,
        )
    return create_model(name, **spec), types
