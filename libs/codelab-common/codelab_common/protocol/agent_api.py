"""The agent-runtime's HTTP API: `POST /agent/message/stream` and the Server-Sent Events it answers with."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from codelab_common.protocol.frames import SESSION_ID_PATTERN, InboundFrame

MESSAGE_EVENT = "message"
DONE_EVENT = "done"
TOOL_TIMEOUT_ERROR = "tool timed out after"
"""How the `error` of the `tool_result` the gateway sends for a call the client did not answer in time begins."""


def tool_timeout_error(seconds: str) -> str:
    return f"{TOOL_TIMEOUT_ERROR} {seconds} s"


class AgentRequest(BaseModel):
    """One step of a session: a user message that starts a turn, or a tool result that continues it.

    `tools` names the tools the connected client executes; the model is offered only those (None: all).
    The seed's flat body `{"session_id", "type", "content"}` is accepted too.
    """

    model_config = ConfigDict(extra="ignore")

    session_id: str = Field(pattern=SESSION_ID_PATTERN)
    message: InboundFrame
    tools: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _accept_flat_body(cls, data: Any) -> Any:
        if isinstance(data, dict) and "message" not in data and "type" in data:
            frame = {key: value for key, value in data.items() if key not in ("session_id", "tools")}
            return {"session_id": data.get("session_id"), "tools": data.get("tools"), "message": frame}
        return data


class StepStatus(StrEnum):
    COMPLETED = "completed"
    AWAITING_TOOL_RESULTS = "awaiting_tool_results"
    FAILED = "failed"


class StepDone(BaseModel):
    """Data of the closing `done` event: how the step ended."""

    status: StepStatus
    pending_call_ids: list[str] = Field(default_factory=list)
