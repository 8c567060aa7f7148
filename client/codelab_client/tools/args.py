"""Reading tool arguments as the model sends them: typed, with lenient coercion of obvious string forms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codelab_client.tools.errors import invalid_arguments


def string(args: Mapping[str, Any], key: str, *, default: str | None = None, allow_empty: bool = False) -> str:
    """A required string (when `default` is None) or an optional one."""
    value = args.get(key)
    if value is None:
        if default is None:
            raise invalid_arguments(f"missing required argument '{key}'")
        return default
    if not isinstance(value, str):
        raise invalid_arguments(f"argument '{key}' must be a string")
    if not allow_empty and not value:
        raise invalid_arguments(f"argument '{key}' must not be empty")
    if "\x00" in value and key in ("path", "cwd", "query"):
        raise invalid_arguments(f"argument '{key}' contains a NUL character")
    return value


def boolean(args: Mapping[str, Any], key: str, default: bool) -> bool:
    value = args.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise invalid_arguments(f"argument '{key}' must be true or false")


def integer(args: Mapping[str, Any], key: str, *, minimum: int | None = None) -> int | None:
    """An optional integer; models sometimes send `"12"` or `12.0`, which are accepted."""
    value = args.get(key)
    if value is None:
        return None
    number: int
    if isinstance(value, bool):
        raise invalid_arguments(f"argument '{key}' must be an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())
    else:
        raise invalid_arguments(f"argument '{key}' must be an integer")
    if minimum is not None and number < minimum:
        raise invalid_arguments(f"argument '{key}' must be at least {minimum}")
    return number
