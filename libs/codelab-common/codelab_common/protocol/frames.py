"""Frames exchanged between a client (IDE or terminal), the gateway and agent-runtime.

These models are the source of `docs/protocol.md`. Inbound frames tolerate what the real IDE sends: every
frame carries the same 15 keys with `null` when unused, so null values fall back to defaults and unknown
keys are ignored.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class ErrorCode(StrEnum):
    INVALID_FORMAT = "INVALID_FORMAT"
    INVALID_SESSION = "INVALID_SESSION"
    UNKNOWN_CALL_ID = "UNKNOWN_CALL_ID"
    AGENT_DOWN = "AGENT_DOWN"
    TOOL_TIMEOUT = "TOOL_TIMEOUT"
    LLM_ERROR = "LLM_ERROR"
    STEP_LIMIT = "STEP_LIMIT"
    BUSY = "BUSY"
    UNAUTHORIZED = "UNAUTHORIZED"
    INTERNAL = "INTERNAL"


class _InboundFrame(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class UserMessage(_InboundFrame):
    type: Literal["user_message"] = "user_message"
    content: str = Field(min_length=1, max_length=200_000)
    role: Literal["user"] = "user"
    message_id: str | None = Field(default=None, max_length=128)


class ToolResult(_InboundFrame):
    type: Literal["tool_result"] = "tool_result"
    call_id: str = Field(min_length=1, max_length=128)
    tool_name: str | None = None
    result: dict[str, Any] | str | None = None
    error: str | None = None


InboundFrame = Annotated[UserMessage | ToolResult, Field(discriminator="type")]
INBOUND_FRAME_TYPES: tuple[str, ...] = ("user_message", "tool_result")
inbound_frame_adapter: TypeAdapter[UserMessage | ToolResult] = TypeAdapter(InboundFrame)


class Ack(BaseModel):
    type: Literal["ack"] = "ack"
    status: Literal["received"] = "received"
    message_id: str


class AssistantMessage(BaseModel):
    """A piece of the assistant's answer.

    On the streaming path each frame is a delta (`content` and `token` carry the same text) and the turn closes
    with `is_final: true`. On the IDE path each frame is one whole message with `is_final: true`.
    """

    type: Literal["assistant_message"] = "assistant_message"
    message_id: str
    content: str
    token: str
    is_final: bool = False


class ToolCall(BaseModel):
    type: Literal["tool_call"] = "tool_call"
    call_id: str
    tool_name: str
    arguments: dict[str, Any]
    requires_approval: bool
    message_id: str | None = None
    is_final: bool = True
    """Always true, as the seed sends it: a tool call is never continued by a later frame."""


class ErrorFrame(BaseModel):
    type: Literal["error"] = "error"
    code: ErrorCode
    content: str
    error: str
    message_id: str | None = None
    call_id: str | None = None

    @classmethod
    def of(cls, code: ErrorCode, text: str, **extra: Any) -> ErrorFrame:
        return cls(code=code, content=text, error=text, **extra)


OutboundFrame = Annotated[Ack | AssistantMessage | ToolCall | ErrorFrame, Field(discriminator="type")]
outbound_frame_adapter: TypeAdapter[Ack | AssistantMessage | ToolCall | ErrorFrame] = TypeAdapter(OutboundFrame)
