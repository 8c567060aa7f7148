"""What a step yields: the frames it writes to the session's log (plain dicts, `seq` added when logged) and, last,
how the step ended.

Token deltas are built as plain dicts (one orjson call each when logged); the rarer frames go through the shared
wire models so they always match the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from codelab_common.protocol import ErrorCode, ErrorFrame, StepStatus, StopReason

Frame = dict[str, Any]


@dataclass(slots=True)
class StepEnd:
    status: StepStatus
    pending_call_ids: list[str] = field(default_factory=list)
    error_code: ErrorCode | None = None


def delta(message_id: str, token: str) -> Frame:
    return {"type": "assistant_message", "message_id": message_id, "content": token, "token": token, "is_final": False}


def final(
    message_id: str, stop_reason: StopReason = StopReason.COMPLETED, usage: dict[str, Any] | None = None
) -> Frame:
    frame: Frame = {
        "type": "assistant_message",
        "message_id": message_id,
        "content": "",
        "token": "",
        "is_final": True,
        "stop_reason": stop_reason.value,
    }
    if usage is not None:
        frame["usage"] = usage
    return frame


def of_model(frame: BaseModel) -> Frame:
    data: Frame = frame.model_dump(mode="json", exclude_none=True)
    return data


def error(code: ErrorCode, text: str, **extra: str | None) -> Frame:
    return of_model(ErrorFrame.of(code, text, **extra))


def is_delta(frame: Frame) -> bool:
    return frame["type"] == "assistant_message" and not frame["is_final"]
