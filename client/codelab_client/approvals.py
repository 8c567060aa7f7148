"""Deciding whether a `tool_call` marked `requires_approval` may run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from codelab_common.protocol import ToolCall


@dataclass(frozen=True, slots=True)
class Decision:
    approved: bool
    reason: str = ""


Approver = Callable[[ToolCall], Awaitable[Decision]]
"""Asked once per call that requires approval; a rejection's reason goes back to the model."""

REJECTED_PREFIX = "Rejected by user: "


async def approve_all(call: ToolCall) -> Decision:
    return Decision(True)


def reject_all(reason: str) -> Approver:
    async def reject(call: ToolCall) -> Decision:
        return Decision(False, reason)

    return reject


def rejection_error(decision: Decision) -> str:
    """The tool_result `error` for a rejected call: `Rejected by user: <reason>`."""
    return REJECTED_PREFIX + (decision.reason.strip() or "no reason given")
