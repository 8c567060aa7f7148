"""Deciding on a `tool_call` marked `requires_approval`: the user's decision, sent as an `approval` frame."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from codelab_common.protocol import ApprovalDecision, ApprovalRule, ToolCall


@dataclass(frozen=True, slots=True)
class Decision:
    approved: bool
    reason: str = ""
    """Why the user said no: the model is told, to do what the user wants instead."""
    arguments: dict[str, Any] | None = None
    """The arguments the user edited the call to (approved calls only)."""
    remember: ApprovalRule | None = None
    """A rule for the rest of the session ("always allow pytest here")."""

    @property
    def kind(self) -> ApprovalDecision:
        if not self.approved:
            return ApprovalDecision.REJECT
        return ApprovalDecision.APPROVE if self.arguments is None else ApprovalDecision.EDIT

    def frame(self, call_id: str) -> dict[str, Any]:
        """The `approval` frame that tells the agent."""
        frame: dict[str, Any] = {"type": "approval", "call_id": call_id, "decision": self.kind.value}
        if self.kind is ApprovalDecision.EDIT:
            frame["arguments"] = self.arguments
        if not self.approved and self.reason.strip():
            frame["feedback"] = self.reason.strip()[:4000]
        if self.remember is not None:
            frame["remember"] = self.remember.model_dump(mode="json", exclude_none=True)
        return frame


Approver = Callable[[ToolCall], Awaitable[Decision]]
"""Asked once per call that requires approval."""


async def approve_all(call: ToolCall) -> Decision:
    return Decision(True)


def reject_all(reason: str) -> Approver:
    async def reject(call: ToolCall) -> Decision:
        return Decision(False, reason)

    return reject
