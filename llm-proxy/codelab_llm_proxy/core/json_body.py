"""JSON the proxy parses from a client: request bodies and the tool-call arguments inside them.

Every such parse goes through `parse_json_object`, which refuses what the rest of the proxy cannot handle with a 400
in the project's envelope instead of failing later with a 500: anything but a JSON object, and nesting deeper than
`MAX_JSON_DEPTH`. orjson itself parses up to 1024 levels but serialises only 254, so a body between the two used to
be accepted, then fail when forwarded upstream; the limit also keeps such bodies from every model server.
"""

from __future__ import annotations

from typing import Any

import orjson

from codelab_llm_proxy.core.errors import InvalidRequest

MAX_JSON_DEPTH = 64
"""Objects and arrays inside one another, the outermost counted. A chat request's messages need fewer than 10; a tool
schema with 29 levels of nested objects still fits; well below orjson's 254 for everything the proxy re-serialises."""
_CONTAINERS = (dict, list)


def parse_json_object(raw: bytes | str, what: str = "request body") -> dict[str, Any]:
    """`raw` as a dict, or `InvalidRequest` naming `what` when it is not JSON, not an object, or nested too deep."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):
            raise _too_deep(what) from None
        raise InvalidRequest(f"{what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object")
    if not nested_within(value, MAX_JSON_DEPTH):
        raise _too_deep(what)
    return value


def nested_within(value: Any, limit: int) -> bool:
    """Whether `value` holds no more than `limit` levels of objects and arrays; walks level by level, no recursion."""
    level = [value] if isinstance(value, _CONTAINERS) else []
    for _ in range(limit):
        if not level:
            return True
        level = [
            child
            for container in level
            for child in (container.values() if isinstance(container, dict) else container)
            if isinstance(child, _CONTAINERS)
        ]
    return not level


def _too_deep(what: str) -> InvalidRequest:
    return InvalidRequest(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
