"""Frames exchanged between a client (IDE or terminal), the gateway and agent-runtime.

These models are the source of `docs/protocol.md`. Inbound frames tolerate what the real IDE sends: every
frame carries the same 15 keys with `null` when unused, so null values fall back to defaults and unknown
keys are ignored.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from codelab_common.protocol.approvals import ApprovalRule

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"


class ErrorCode(StrEnum):
    INVALID_FORMAT = "INVALID_FORMAT"
    INVALID_SESSION = "INVALID_SESSION"
    UNKNOWN_CALL_ID = "UNKNOWN_CALL_ID"
    AGENT_DOWN = "AGENT_DOWN"
    TOOL_TIMEOUT = "TOOL_TIMEOUT"
    LLM_ERROR = "LLM_ERROR"
    STEP_LIMIT = "STEP_LIMIT"
    REPEATED_CALL = "REPEATED_CALL"
    BUSY = "BUSY"
    DENIED = "DENIED"
    UNAUTHORIZED = "UNAUTHORIZED"
    TOO_LARGE = "TOO_LARGE"
    RATE_LIMITED = "RATE_LIMITED"
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
    model: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")
    """The model for this turn (a name from llm-proxy's model list); the deployment's default when absent."""


class ToolResult(_InboundFrame):
    type: Literal["tool_result"] = "tool_result"
    call_id: str = Field(min_length=1, max_length=128)
    tool_name: str | None = None
    result: dict[str, Any] | str | None = None
    error: str | None = None


class Cancel(_InboundFrame):
    """Stop the running turn (`message_id`, when given, must name it); the turn ends with `stop_reason: cancelled`."""

    type: Literal["cancel"] = "cancel"
    message_id: str | None = Field(default=None, max_length=128)


class ApprovalDecision(StrEnum):
    APPROVE = "approve"
    EDIT = "edit"
    REJECT = "reject"


class Approval(_InboundFrame):
    """The user's answer to a `tool_call` with `requires_approval: true`: run it as it is (`approve`), run it with
    `arguments` instead (`edit`), or do not run it (`reject`; `feedback` tells the model what the user wants
    instead). `remember` adds a rule to the session's policy (usually `allow` for calls like this one)."""

    type: Literal["approval"] = "approval"
    call_id: str = Field(min_length=1, max_length=128)
    decision: ApprovalDecision
    arguments: dict[str, Any] | None = None
    feedback: str | None = Field(default=None, max_length=4000)
    remember: ApprovalRule | None = None

    @model_validator(mode="after")
    def _arguments_only_to_edit(self) -> Approval:
        if self.decision is ApprovalDecision.EDIT and self.arguments is None:
            raise ValueError("an edit needs the edited 'arguments'")
        if self.decision is not ApprovalDecision.EDIT and self.arguments is not None:
            raise ValueError("'arguments' go only with decision 'edit'")
        return self


MAX_SEQ = 2**63 - 1
"""The largest seq a session's log can hold (a signed 64-bit column); a `last_seq` beyond it names no frame."""


class Resume(_InboundFrame):
    """Send again every frame of the session after `last_seq`, then the live stream (the gateway answers it)."""

    type: Literal["resume"] = "resume"
    last_seq: int = Field(ge=0, le=MAX_SEQ)


TurnInput = Annotated[UserMessage | ToolResult | Approval | Cancel, Field(discriminator="type")]
"""What a client sends that agent-runtime acts on."""
InboundFrame = Annotated[UserMessage | ToolResult | Approval | Cancel | Resume, Field(discriminator="type")]
INBOUND_FRAME_TYPES: tuple[str, ...] = ("user_message", "tool_result", "approval", "cancel", "resume")
inbound_frame_adapter: TypeAdapter[UserMessage | ToolResult | Approval | Cancel | Resume] = TypeAdapter(InboundFrame)


class StopReason(StrEnum):
    """Why a turn ended, on its final `assistant_message`."""

    COMPLETED = "completed"
    CANCELLED = "cancelled"
    ERROR = "error"


class _OutboundFrame(BaseModel):
    seq: int | None = None
    """The frame's place in the session's event log (1, 2, ...); a client resumes after the last one it holds.
    Frames the gateway writes about the connection itself (a refused frame, BUSY) have none and are not replayed."""


class Ack(_OutboundFrame):
    type: Literal["ack"] = "ack"
    status: Literal["received"] = "received"
    message_id: str


class Usage(BaseModel):
    """What the turn's last model call took of the model's context window, on the turn's final frame."""

    prompt_tokens: int
    """The prompt of the last model call (history, tools, system prompt), as counted before it was sent."""
    completion_tokens: int
    """Its reply."""
    context_window: int
    """The model's whole window, prompt and reply together."""
    counted_by: Literal["tokenizer", "estimate"]
    """`estimate`: characters ÷ 3, a deliberate overcount (docs/context-window.md)."""


class AssistantMessage(_OutboundFrame):
    """A piece of the assistant's answer.

    On the streaming path each frame is a delta (`content` and `token` carry the same text) and the turn closes
    with `is_final: true`. On the IDE path each frame is one whole message with `is_final: true`.
    """

    type: Literal["assistant_message"] = "assistant_message"
    message_id: str
    content: str
    token: str
    is_final: bool = False
    stop_reason: StopReason | None = None
    """On the frame that ends a turn (is_final true on the streaming path)."""
    usage: Usage | None = None
    """On the frame that ends a turn, when the turn called the model."""


class ToolCall(_OutboundFrame):
    type: Literal["tool_call"] = "tool_call"
    call_id: str
    tool_name: str
    arguments: dict[str, Any]
    requires_approval: bool
    message_id: str | None = None
    is_final: bool = True
    """Always true, as the seed sends it: a tool call is never continued by a later frame."""


class ApprovalSource(StrEnum):
    APPROVAL = "approval"
    """An `approval` frame."""
    TOOL_RESULT = "tool_result"
    """A client answered the call with its result without an `approval` first (it asked the user itself)."""
    IDE_REJECTION = "ide_rejection"
    """The IDE's `tool_result` whose error begins `Операция отклонена:`, translated by the gateway."""
    REVIEW = "review"
    """The result of an `apply_patch_review`: the user decided hunk by hunk."""


class ApprovalRecorded(_OutboundFrame):
    """The user's decision on a call, as stored in the session's log. After `approve` or `edit` the client runs the
    call with `arguments` (the edited ones after an edit) and sends its `tool_result`; after `reject` nothing runs
    and the model is told, with `feedback`. `rule` is the rule the decision added to the session's policy."""

    type: Literal["approval_recorded"] = "approval_recorded"
    call_id: str
    tool_name: str
    decision: ApprovalDecision
    arguments: dict[str, Any]
    feedback: str | None = None
    rule: ApprovalRule | None = None
    source: ApprovalSource = ApprovalSource.APPROVAL
    decided_at: float
    message_id: str | None = None


class PlanStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    ERROR = "error"
    BLOCKED = "blocked"


class PlanStep(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    text: str = Field(min_length=1, max_length=500)
    status: PlanStatus = PlanStatus.PENDING
    result: str | None = Field(default=None, max_length=2000)


class PlanUpdate(_OutboundFrame):
    """The agent's plan, whole: sent when it is made and whenever its steps change (added, removed, reworded)."""

    type: Literal["plan_update"] = "plan_update"
    plan_id: str
    steps: list[PlanStep]
    current_step: str | None = None
    message_id: str | None = None


class PlanProgress(_OutboundFrame):
    """One step of the plan changed status (its `result` once done or failed); the steps are otherwise as last sent."""

    type: Literal["plan_progress"] = "plan_progress"
    plan_id: str
    step_id: str
    status: PlanStatus
    result: str | None = None
    message_id: str | None = None


class ErrorFrame(_OutboundFrame):
    type: Literal["error"] = "error"
    code: ErrorCode
    content: str
    error: str
    message_id: str | None = None
    call_id: str | None = None

    @classmethod
    def of(cls, code: ErrorCode, text: str, **extra: Any) -> ErrorFrame:
        return cls(code=code, content=text, error=text, **extra)


OutboundFrame = Annotated[
    Ack | AssistantMessage | ToolCall | ApprovalRecorded | PlanUpdate | PlanProgress | ErrorFrame,
    Field(discriminator="type"),
]
outbound_frame_adapter: TypeAdapter[
    Ack | AssistantMessage | ToolCall | ApprovalRecorded | PlanUpdate | PlanProgress | ErrorFrame
] = TypeAdapter(OutboundFrame)


FINAL_MARK = '"is_final":true'
"""How a turn's final frame reads in the log's JSON (within a string value its quotes would be escaped)."""


def ends_turn(text: str) -> bool:
    """Whether a logged frame's JSON text is a turn's final frame."""
    return FINAL_MARK in text and frame_type(text) == "assistant_message"


def frame_type(text: str) -> str:
    """The `type` of a logged frame's JSON text (agent-runtime writes `{"type":"...",...}`), without parsing the rest
    when it can."""
    if text.startswith('{"type":"'):
        end = text.find('"', 9)
        if end > 0:
            return text[9:end]
    kind = orjson.loads(text).get("type")
    return kind if isinstance(kind, str) else ""
