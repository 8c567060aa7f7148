"""The persisted state of one session: its history in OpenAI message format and the turn in progress."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any, Literal

import orjson
from pydantic import BaseModel, Field

from codelab_common.protocol import ApprovalRule, PlanStep


class SessionStatus(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    """A step of the turn runs: the model is called, or the turn is being closed."""
    AWAITING_TOOL_RESULTS = "awaiting_tool_results"


ANSWERED_CALLS_KEPT = 256
APPROVAL_RULES_KEPT = 100


class PendingCall(BaseModel):
    """A tool call of the model's last reply; `result` is the tool message content once it is known.

    Calls that were never forwarded (bad arguments, a tool not offered, a repeat) are kept here with their result
    already set, so every call of the reply gets its tool message, in the model's order, when the round closes.
    Calls made by the agent itself to gather a turn's context (`purpose="context"`) have no tool message: their
    results become part of the turn's user message.
    """

    call_id: str
    name: str
    wire_name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    since: float = Field(default_factory=time.time)
    forwarded: bool = True
    result: str | None = None
    purpose: Literal["model", "context"] = "model"
    approval: Literal["none", "pending", "approved", "rejected"] = "none"
    """`pending` while the user has not decided on a call the policy asks about; the client runs it only after
    `approved` (its `arguments` are then the ones the user approved or edited)."""
    edited: bool = False
    """The user changed the arguments before the call ran; the model is told what ran."""
    traceparent: str | None = None
    """The trace context of the step that sent the call, so the step that takes its result can trace the round
    trip under it (None when that step was not traced)."""


class Plan(BaseModel):
    """The plan the model keeps with `update_plan` (see `turns/plans.py`)."""

    plan_id: str
    steps: list[PlanStep]
    current_step: str | None = None
    message_id: str = ""
    """The turn that last sent it whole: a later turn sends it whole again before any progress."""


class SessionState(BaseModel):
    session_id: str
    messages: list[dict[str, Any]] = Field(default_factory=list)
    pending: list[PendingCall] = Field(default_factory=list)
    turn_message_id: str | None = None
    turn_tools: list[str] | None = None
    turn_model: str | None = None
    """The model the turn's user message asked for (None: the deployment's)."""
    turn_start: int = 0
    """Index in `messages` of the turn's user message."""
    step_count: int = 0
    repeats: int = 0
    """Calls of this turn the model had already made, answered from the earlier result."""
    failed_repeats: int = 0
    """Of those, the ones whose earlier result was an error."""
    context_pieces: list[str] = Field(default_factory=list)
    """The turn's context gathered so far, while it is gathered in more than one round."""
    corrections: int = 0
    """Answers of this turn that wrote a tool call or result as text and were sent back to the model."""
    retries: int = 0
    """Answers of this turn given right after a failed change and sent back to the model to try again."""
    running: bool = False
    """A step of the turn runs (the instance holding the session's lease drives it)."""
    turn_start_seq: int = 0
    """The seq of the turn's first frame, so a client that connects mid-turn can be shown the turn from there."""
    plan: Plan | None = None
    summary: str | None = None
    """The earlier turns, summarised to fit the model's context window (see `turns/context_window.py`)."""
    summary_upto: int = 0
    """Index in `messages` of the first message the summary does not cover: what is sent starts there."""
    approval_rules: list[ApprovalRule] = Field(default_factory=list)
    """Rules the user asked to remember in this session, added to the deployment's policy."""
    answered: list[str] = Field(default_factory=list)
    """Ids of the latest calls that got their result, so a result sent twice is acknowledged and not applied again."""
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)

    def to_json(self) -> bytes:
        """The state as JSON. The history, plain JSON already, goes to orjson as it is: walking it through the model's
        serializer cost five times as much, on every write of a long session."""
        fields = self.model_dump(mode="json", exclude={"messages"})
        fields["messages"] = self.messages
        return orjson.dumps(fields)

    @classmethod
    def from_json(cls, text: str | bytes) -> SessionState:
        """The state `to_json` wrote; the history is taken as parsed (it is only ever written by `to_json`)."""
        fields = orjson.loads(text)
        messages = fields.pop("messages", [])
        state = cls.model_validate(fields)
        state.messages = messages
        return state

    @property
    def status(self) -> SessionStatus:
        if self.running:
            return SessionStatus.RUNNING
        return SessionStatus.AWAITING_TOOL_RESULTS if self.awaiting() else SessionStatus.IDLE

    def mark_answered(self, call_id: str) -> None:
        self.answered = [*self.answered[-(ANSWERED_CALLS_KEPT - 1) :], call_id]

    def remember(self, rule: ApprovalRule) -> None:
        """Add a rule to the session's policy (once; the oldest go beyond `APPROVAL_RULES_KEPT`)."""
        if rule not in self.approval_rules:
            self.approval_rules = [*self.approval_rules[-(APPROVAL_RULES_KEPT - 1) :], rule]

    def awaiting(self) -> list[PendingCall]:
        """The forwarded calls still without a result."""
        return [call for call in self.pending if call.result is None]

    def find_awaiting(self, call_id: str) -> PendingCall | None:
        return next((call for call in self.pending if call.call_id == call_id and call.result is None), None)

    def start_turn(self, message_id: str, content: str, tools: list[str] | None, model: str | None = None) -> None:
        self.turn_message_id = message_id
        self.turn_tools = tools
        self.turn_model = model
        self.step_count = self.repeats = self.failed_repeats = self.corrections = self.retries = 0
        self.context_pieces = []
        self.turn_start = len(self.messages)
        self.messages.append({"role": "user", "content": content})

    def turn_messages(self) -> list[dict[str, Any]]:
        """The messages of the turn in progress, its user message first."""
        return self.messages[self.turn_start :]

    @property
    def gathering_context(self) -> bool:
        return any(call.purpose == "context" for call in self.pending)

    def close_tool_round(self) -> None:
        """Append one tool message per call of the last reply, in the order the model made them."""
        for call in self.pending:
            if call.purpose == "context":
                continue
            content = call.result if call.result is not None else '{"error":"no result"}'
            self.messages.append({"role": "tool", "tool_call_id": call.call_id, "content": content})
        self.pending = []
