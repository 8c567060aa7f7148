"""Check a tool call's arguments against the tool's JSON Schema, as far as tool definitions use JSON Schema.

Tool parameters are an object schema whose properties have a `type` (string, integer, number, boolean, array,
object, or a list of these) and perhaps an `enum`; `required` names the keys that must be present. That subset is
checked; anything else in a schema is accepted as it is. Undeclared keys are dropped (`declared_only`): small
models copy keys of an earlier result (`exit_code`, `duration_ms`) into the next call, and a client must never
receive them.

`coerce_arguments` repairs what a small model gets wrong about types while meaning the right thing: a file's
text written as a JSON object instead of a string (`write_file` of `settings.json`), `"10"` for an integer,
`"true"` for a boolean, a number for a file's text. Anything else is left for `argument_errors` to report.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
    "null": (type(None),),
}


def argument_errors(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    """What is wrong with `arguments` for a tool whose parameters are `schema`; empty when they fit."""
    errors = [f"missing required argument {name!r}" for name in schema.get("required") or () if name not in arguments]
    properties = schema.get("properties") or {}
    for name, value in arguments.items():
        declared = properties.get(name)
        if not isinstance(declared, Mapping):
            continue
        problem = _value_error(declared, value)
        if problem:
            errors.append(f"argument {name!r} {problem}")
    return errors


def coerce_arguments(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """`arguments` with values of a plainly wrong type turned into the declared one, where that is unambiguous."""
    properties = schema.get("properties") or {}
    coerced = dict(arguments)
    for name, value in arguments.items():
        declared = properties.get(name)
        if isinstance(declared, Mapping) and isinstance(declared.get("type"), str):
            coerced[name] = _coerce(declared["type"], value, name in FILE_TEXT_ARGUMENTS)
    return coerced


FILE_TEXT_ARGUMENTS = frozenset({"content", "new_text"})
"""Arguments that hold a file's text, where JSON given as an object means that JSON's text."""


def _coerce(type_name: str, value: Any, file_text: bool) -> Any:
    if _is(value, type_name):
        return value
    if type_name == "string" and file_text and isinstance(value, dict | list):
        return json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    if type_name == "string" and file_text and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    if type_name == "integer" and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if type_name == "boolean" and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def declared_only(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments the schema declares (all of them when it declares none)."""
    properties = schema.get("properties")
    if not properties:
        return dict(arguments)
    return {name: value for name, value in arguments.items() if name in properties}


def _value_error(schema: Mapping[str, Any], value: Any) -> str | None:
    expected = schema.get("type")
    names = [expected] if isinstance(expected, str) else list(expected or ())
    known = [name for name in names if name in _TYPES]
    if known and not any(_is(value, name) for name in known):
        return f"must be {' or '.join(known)}, not {_json_type(value)}"
    allowed = schema.get("enum")
    if isinstance(allowed, list) and allowed and value not in allowed:
        return f"must be one of {', '.join(map(repr, allowed))}"
    return None


def _is(value: Any, type_name: str) -> bool:
    if isinstance(value, bool) and type_name in ("integer", "number"):
        return False
    if type_name == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _TYPES[type_name])


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _is(value, name):
            return name
    return type(value).__name__
