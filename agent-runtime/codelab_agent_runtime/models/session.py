"""The persisted state of one session: its history in OpenAI message format and the turn in progress."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class SessionStatus(StrEnum):
    IDLE = "idle"
    AWAITING_TOOL_RESULTS = "awaiting_tool_results"


class PendingCall(BaseModel):
    """A tool call of the model's last reply; `result` is the tool message content once it is known.

    Calls that were never forwarded (bad arguments, a tool not offered) are kept here with their error as result,
    so every call of the reply gets its tool message, in the model's order, when the round closes.
    """

    call_id: str
    name: str
    wire_name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    since: float = Field(default_factory=time.time)
    forwarded: bool = True
    result: str | None = None


class SessionState(BaseModel):
    session_id: str
    messages: list[dict[str, Any]] = Field(default_factory=list)
    pending: list[PendingCall] = Field(default_factory=list)
    turn_message_id: str | None = None
    turn_tools: list[str] | None = None
    step_count: int = 0
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)

    @property
    def status(self) -> SessionStatus:
        return SessionStatus.AWAITING_TOOL_RESULTS if self.awaiting() else SessionStatus.IDLE

    def awaiting(self) -> list[PendingCall]:
        """The forwarded calls still without a result."""
        return [call for call in self.pending if call.result is None]

    def find_awaiting(self, call_id: str) -> PendingCall | None:
        return next((call for call in self.pending if call.call_id == call_id and call.result is None), None)

    def start_turn(self, message_id: str, content: str, tools: list[str] | None) -> None:
        self.turn_message_id = message_id
        self.turn_tools = tools
        self.step_count = 0
        self.messages.append({"role": "user", "content": content})

    def close_tool_round(self) -> None:
        """Append one tool message per call of the last reply, in the order the model made them."""
        for call in self.pending:
            content = call.result if call.result is not None else '{"error":"no result"}'
            self.messages.append({"role": "tool", "tool_call_id": call.call_id, "content": content})
        self.pending = []
