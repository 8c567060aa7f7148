"""Inbound WebSocket frames: JSON text in, a validated protocol frame (or a precise complaint) out.

Every complaint becomes an `INVALID_FORMAT` error frame and the connection stays open, so the message says exactly
what to fix: not JSON, not an object, no `type`, an unknown `type`, or which field is missing or invalid.
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
    Resume,
    ToolResult,
    UserMessage,
    inbound_frame_adapter,
)

IGNORED_FRAME_TYPES: frozenset[str] = frozenset({"switch_agent"})
"""Frames a real client sends that need no action here: the IDE's `switch_agent` (this backend runs one agent)."""


class FrameError(ValueError):
    """The frame cannot be used; the message tells the client why."""


def parse_frame(text: str, max_bytes: int) -> UserMessage | ToolResult | Approval | Cancel | Resume | None:
    """The frame `text` carries; None for a known frame that needs no action (see IGNORED_FRAME_TYPES)."""
    size = len(text.encode())
    if size > max_bytes:
        raise FrameError(f"frame is {size} bytes; the limit is {max_bytes} bytes")
    try:
        data: Any = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FrameError(f"Invalid JSON message: {exc}") from None
    if not isinstance(data, dict):
        raise FrameError(f"frame must be a JSON object, got {_json_kind(data)}")
    kind = data.get("type")
    if kind is None:
        raise FrameError("frame has no 'type'; expected one of: " + ", ".join(INBOUND_FRAME_TYPES))
    if not isinstance(kind, str):
        raise FrameError(f"'type' must be a string, got {_json_kind(kind)}")
    if kind in IGNORED_FRAME_TYPES:
        return None
    if kind not in INBOUND_FRAME_TYPES:
        raise FrameError(f"unknown frame type {kind[:64]!r}; expected one of: " + ", ".join(INBOUND_FRAME_TYPES))
    try:
        return inbound_frame_adapter.validate_python(data)
    except ValidationError as exc:
        raise FrameError(f"invalid {kind}: {describe_validation_errors(_without_tag(exc.errors()))}") from None


def _without_tag(errors: list[Any]) -> list[dict[str, Any]]:
    """pydantic prefixes each location with the union's tag (`tool_result.call_id`); the message names it once."""
    return [{**error, "loc": tuple(error.get("loc", ()))[1:]} for error in errors]


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
