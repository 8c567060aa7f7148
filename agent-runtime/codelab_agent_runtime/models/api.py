"""Bodies of agent-runtime's own HTTP API besides the shared `AgentRequest`/`StepDone` (codelab_common.protocol)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from codelab_common.protocol import ApprovalRecorded, ApprovalRule


class PendingCallView(BaseModel):
    call_id: str
    tool_name: str
    arguments: dict[str, Any]
    since: float
    has_result: bool
    approval: Literal["none", "pending", "approved", "rejected"]
    """`pending`: the call waits for the user's decision."""


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


class ApprovalsView(BaseModel):
    """`GET /agent/sessions/{session_id}/approvals`: who decided what on which call, and the rules the session
    remembers. `source` says how the decision came: an `approval` frame, a `tool_result` sent without one (the
    client asked the user itself), or the IDE's rejection."""

    session_id: str
    decisions: list[ApprovalRecorded]
    rules: list[ApprovalRule]


class SessionClaim(BaseModel):
    session_id: str
    principal: str | None
    """The principal the session belongs to (None: the call named none, so nothing was checked)."""
