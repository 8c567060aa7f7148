"""The SSE events agent-runtime answers with: `event: message` per outbound frame, `event: done` last.

Token deltas are built as plain dicts (one orjson call each); the rarer frames go through the shared wire models
so they always match the contract.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from pydantic import BaseModel

from codelab_common.protocol import DONE_EVENT, MESSAGE_EVENT, ErrorCode, ErrorFrame, StepDone, StepStatus
from codelab_common.sse import encode_event


def delta_event(message_id: str, token: str) -> bytes:
    frame = {
        "type": "assistant_message",
        "message_id": message_id,
        "content": token,
        "token": token,
        "is_final": False,
    }
    return encode_event(orjson.dumps(frame), MESSAGE_EVENT)


def final_event(message_id: str) -> bytes:
    frame = {"type": "assistant_message", "message_id": message_id, "content": "", "token": "", "is_final": True}
    return encode_event(orjson.dumps(frame), MESSAGE_EVENT)


def frame_event(frame: BaseModel) -> bytes:
    return encode_event(frame.model_dump_json(exclude_none=True), MESSAGE_EVENT)


def error_event(code: ErrorCode, text: str, **extra: str | None) -> bytes:
    return frame_event(ErrorFrame.of(code, text, **extra))


def done_event(status: StepStatus, pending_call_ids: Iterable[str] = ()) -> bytes:
    return encode_event(StepDone(status=status, pending_call_ids=list(pending_call_ids)).model_dump_json(), DONE_EVENT)
