"""Checking requests against the schemas their routes declare.

The same :class:`~covey.runtime.http.routes.Route` schemas that the OpenAPI document
publishes are enforced here, so a request the document calls invalid is refused with 400
naming the field, and one it calls valid reaches the handler. Only the subset of JSON
Schema the routes use is understood: ``type``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``enum``, ``anyOf``, ``minimum``, ``maximum``,
``minLength``, ``maxLength``, ``pattern``, ``minItems``, ``maxItems``, ``maxProperties``. A schema
keyword outside it is a programming error (:func:`check_schema` finds it in the tests).
"""

from __future__ import annotations

import re
from typing import Any

from covey.runtime.http.routes import Param, Schema

_KNOWN = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "anyOf",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "maxItems",
    "minItems",
    "maxProperties",
    "description",
    "format",
    "examples",
}
#: Deepest nesting of a body that is looked at (deeper is refused, never recursed into).
MAX_DEPTH = 32


class Invalid(ValueError):
    """A value does not match its schema; the message names where."""


def check_schema(schema: Schema, where: str = "schema") -> None:
    """Raise ``ValueError`` if ``schema`` uses a keyword :func:`validate` does not know."""
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"{where}: keywords {sorted(unknown)} are not supported")
    for name, sub in schema.get("properties", {}).items():
        check_schema(sub, f"{where}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            check_schema(schema[key], f"{where}.{key}")
    for i, sub in enumerate(schema.get("anyOf", ())):
        check_schema(sub, f"{where}.anyOf[{i}]")


def _type_ok(kind: str, value: object) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    raise ValueError(f"unknown type {kind!r}")


def validate(value: object, schema: Schema, where: str = "body", depth: int = 0) -> None:
    """Raise :class:`Invalid` naming the first place ``value`` breaks ``schema``."""
    if depth > MAX_DEPTH:
        raise Invalid(f"{where}: nested too deeply")
    if "anyOf" in schema:
        for sub in schema["anyOf"]:
            try:
                validate(value, sub, where, depth + 1)
                break
            except Invalid:
                continue
        else:
            raise Invalid(f"{where}: matches none of the allowed forms")
    kind = schema.get("type")
    if kind is not None and not _type_ok(kind, value):
        raise Invalid(f"{where}: must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}")
    if "enum" in schema and value not in schema["enum"]:
        raise Invalid(f"{where}: must be one of {', '.join(map(str, schema['enum']))}")
    if isinstance(value, str):
        _check_text(value, schema, where)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise Invalid(f"{where}: must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise Invalid(f"{where}: must be at most {schema['maximum']}")
    elif isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise Invalid(f"{where}: at most {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise Invalid(f"{where}: at least {schema['minItems']} items")
        items = schema.get("items")
        if items is not None:
            for i, item in enumerate(value):
                validate(item, items, f"{where}[{i}]", depth + 1)
    elif isinstance(value, dict):
        _check_object(value, schema, where, depth)


def _check_text(value: str, schema: Schema, where: str) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        raise Invalid(f"{where}: at least {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise Invalid(f"{where}: at most {schema['maxLength']} characters")
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        raise Invalid(f"{where}: does not match {schema['pattern']}")


def _check_object(value: dict[str, Any], schema: Schema, where: str, depth: int) -> None:
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        raise Invalid(f"{where}: at most {schema['maxProperties']} entries")
    for name in schema.get("required", ()):
        if name not in value:
            raise Invalid(f"{where}.{name}: required")
    props: dict[str, Schema] = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in props:
            validate(item, props[name], f"{where}.{name}", depth + 1)
        elif extra is False:
            raise Invalid(f"{where}.{name}: unknown field")
        elif isinstance(extra, dict):
            validate(item, extra, f"{where}.{name}", depth + 1)


def coerce_param(param: Param, text: str) -> object:
    """A query or path value (always text on the wire) as its schema's type.

    Raises:
        Invalid: naming the parameter.
    """
    kind = param.schema.get("type")
    value: object = text
    if kind == "integer":
        try:
            value = int(text, 10)
        except ValueError:
            raise Invalid(f"{param.name}: must be an integer") from None
    elif kind == "number":
        try:
            value = float(text)
        except ValueError:
            raise Invalid(f"{param.name}: must be a number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise Invalid(f"{param.name}: must be a finite number")
    elif kind == "boolean":
        if text not in ("true", "false"):
            raise Invalid(f"{param.name}: must be true or false")
        value = text == "true"
    validate(value, param.schema, param.name)
    return value
