"""Inbound WebSocket frames: JSON text in, a validated protocol frame (or a precise complaint) out.

Every complaint becomes an error frame (`INVALID_FORMAT`, or `TOO_LARGE` for a frame over its size limit) and the
connection stays open, so the message says exactly what to fix: not JSON, not an object, nested too deep, no
`type`, an unknown `type`, or which field is missing or invalid. A complaint quotes at most a short prefix of what
the client sent.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from codelab_common.http_errors import describe_validation_errors
from codelab_common.protocol import (
    INBOUND_FRAME_TYPES,
    Approval,
    Cancel,
    ErrorCode,
    Resume,
    ToolResult,
    UserMessage,
    inbound_frame_adapter,
)

IGNORED_FRAME_TYPES: frozenset[str] = frozenset({"switch_agent"})
"""Frames a real client sends that need no action here: the IDE's `switch_agent` (this backend runs one agent)."""


MAX_DEPTH = 64
"""How deeply a frame's JSON may nest (a tool's result included): deeper is refused before anything walks it."""
MESSAGE_MAX_CHARS = 300
LOCATION_PART_CHARS = 32
"""How much of a key the client sent a complaint's field location quotes."""


class FrameError(ValueError):
    """The frame cannot be used; the message tells the client why."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.INVALID_FORMAT) -> None:
        super().__init__(message[:MESSAGE_MAX_CHARS])
        self.code = code


def parse_frame(
    text: str, max_bytes: int, max_tool_result_bytes: int
) -> UserMessage | ToolResult | Approval | Cancel | Resume | None:
    """The frame `text` carries; None for a known frame that needs no action (see IGNORED_FRAME_TYPES).

    A frame may be `max_bytes` long, a `tool_result` `max_tool_result_bytes` (file contents, command output)."""
    size = len(text.encode(errors="surrogatepass"))
    limit = max(max_bytes, max_tool_result_bytes)
    if size > limit:
        raise FrameError(f"frame is {size} bytes; the limit is {limit} bytes", ErrorCode.TOO_LARGE)
    try:
        data: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"Invalid JSON message: {exc}") from None
    if not isinstance(data, dict):
        raise FrameError(f"frame must be a JSON object, got {_json_kind(data)}")
    if _deeper_than(data, MAX_DEPTH):
        raise FrameError(f"frame nests deeper than {MAX_DEPTH} levels")
    kind = data.get("type")
    if size > max_bytes and kind != "tool_result":
        raise FrameError(f"frame is {size} bytes; the limit is {max_bytes} bytes", ErrorCode.TOO_LARGE)
    if kind is None:
        raise FrameError("frame has no 'type'; expected one of: " + ", ".join(INBOUND_FRAME_TYPES))
    if not isinstance(kind, str):
        raise FrameError(f"'type' must be a string, got {_json_kind(kind)}")
    if kind in IGNORED_FRAME_TYPES:
        return None
    if kind not in INBOUND_FRAME_TYPES:
        raise FrameError(f"unknown frame type {kind[:64]!r}; expected one of: " + ", ".join(INBOUND_FRAME_TYPES))
    try:
        frame = inbound_frame_adapter.validate_python(data)
    except ValidationError as exc:
        raise FrameError(f"invalid {kind}: {describe_validation_errors(_without_tag(exc.errors()))}") from None
    return frame


def _deeper_than(value: Any, limit: int) -> bool:
    level: list[Any] = [value]
    for _ in range(limit):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, dict | list)
        ]
        if not level:
            return False
    return True


def _without_tag(errors: list[Any]) -> list[dict[str, Any]]:
    """pydantic prefixes each location with the union's tag (`tool_result.call_id`); the message names it once.
    A location can name a key the client sent (an unexpected one in `remember`): each part keeps a short prefix."""
    return [{**error, "loc": tuple(map(_short, tuple(error.get("loc", ()))[1:]))} for error in errors]


def _short(part: Any) -> Any:
    if isinstance(part, str) and len(part) > LOCATION_PART_CHARS:
        return part[:LOCATION_PART_CHARS] + "…"
    return part


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"
