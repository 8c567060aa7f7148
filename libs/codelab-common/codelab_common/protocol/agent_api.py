"""agent-runtime's HTTP API: inputs to a session, the session's event stream, and the seed's one-step stream.

- `POST /agent/sessions/{id}/input` takes what a client sent (`AgentRequest`) and answers at once with
  `InputAccepted`, or an error envelope whose `code` is the client's error code (BUSY, UNKNOWN_CALL_ID, ...).
- `GET /agent/sessions/{id}/events?after=N` streams the session's frames after seq N as SSE (`id:` the seq,
  `event: message`, `data:` the frame's JSON, which carries `seq` too), then the live ones, until the caller leaves.
  Without `after`, it starts at the running turn's first frame (or at the end when no turn runs). With
  `idle_after=S` it ends, with one `event: idle`, once the session has been idle `S` seconds (every frame sent, the
  last one closed a turn): an idle session's follower (the gateway, for a connected client) then holds no stream
  until its client's next input.
- `POST /agent/message/stream` (the seed's): one step as SSE, `message` events then one `done`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from codelab_common.protocol.frames import SESSION_ID_PATTERN, ApprovalSource, TurnInput

MESSAGE_EVENT = "message"
DONE_EVENT = "done"
IDLE_EVENT = "idle"


def input_path(session_id: str) -> str:
    return f"/agent/sessions/{session_id}/input"


def events_path(session_id: str) -> str:
    return f"/agent/sessions/{session_id}/events"


def claim_path(session_id: str) -> str:
    return f"/agent/sessions/{session_id}/claim"


PRINCIPAL_HEADER = "X-Codelab-Principal"
"""Who a gateway's client is, on the gateway's calls to agent-runtime: a session belongs to the principal whose
call created it, and calls for another principal are answered as if it did not exist (INVALID_SESSION). Calls
without it (client authentication `none`, internal callers) are not checked."""


TOOL_TIMEOUT_ERROR = "tool timed out after"
"""How the `error` of the `tool_result` the gateway sends for a call the client did not answer in time begins."""


def tool_timeout_error(seconds: str) -> str:
    return f"{TOOL_TIMEOUT_ERROR} {seconds} s"


class AgentRequest(BaseModel):
    """One input to a session: a user message that starts a turn, a tool result that continues it, or a cancel.

    `tools` names the tools the connected client executes; the model is offered only those (None: all).
    The seed's flat body `{"session_id", "type", "content"}` is accepted too.
    """

    model_config = ConfigDict(extra="ignore")

    session_id: str = Field(pattern=SESSION_ID_PATTERN)
    message: TurnInput
    tools: list[str] | None = None
    approval_source: ApprovalSource = ApprovalSource.APPROVAL
    """Where an `approval` came from: the gateway sets `ide_rejection` for the IDE's rejecting `tool_result`."""

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
    CANCELLED = "cancelled"


class InputAccepted(BaseModel):
    """agent-runtime took the input. `after_seq`: the session's last seq before it, so the frames it causes are the
    ones after that. `duplicate`: a tool_result for a call already answered, acknowledged and not applied again."""

    status: Literal["accepted", "duplicate"] = "accepted"
    after_seq: int
    message_id: str | None = None


class StepDone(BaseModel):
    """Data of the closing `done` event: how the step ended."""

    status: StepStatus
    pending_call_ids: list[str] = Field(default_factory=list)
