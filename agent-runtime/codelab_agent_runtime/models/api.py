"""Bodies of agent-runtime's own HTTP API besides the shared `AgentRequest`/`StepDone` (codelab_common.protocol)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class PendingCallView(BaseModel):
    call_id: str
    tool_name: str
    arguments: dict[str, Any]
    since: float
    has_result: bool


class SessionView(BaseModel):
    """`GET /agent/sessions/{session_id}`: what an operator needs to see why a session behaves as it does."""

    session_id: str
    status: Literal["idle", "awaiting_tool_results", "running"]
    messages: list[dict[str, Any]]
    pending_calls: list[PendingCallView]
    turn_message_id: str | None
    step_count: int
    last_seq: int
    """The seq of the session's last logged frame."""
    created_at: float
    updated_at: float
