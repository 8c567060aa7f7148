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

_DATA = b"data: "
_DONE_START = encode_event(b"", DONE_EVENT)[: -len(b"\n\n")]
_ERROR_START = encode_event(b'{"type":"error"', MESSAGE_EVENT)[: -len(b"\n\n")]


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


class StepEnd:
    """How a step ended, read from its events as they pass: the `done` status and the last error frame's code.

    Per event it costs two prefix comparisons; only the `done` and error events are parsed."""

    __slots__ = ("_done", "_error")

    def __init__(self) -> None:
        self._done: bytes | None = None
        self._error: bytes | None = None

    def see(self, event: bytes) -> None:
        if event.startswith(_DONE_START):
            self._done = event
        elif event.startswith(_ERROR_START):
            self._error = event

    @property
    def status(self) -> StepStatus | None:
        return None if self._done is None else StepDone.model_validate_json(_data(self._done)).status

    @property
    def error_code(self) -> ErrorCode | None:
        return None if self._error is None else ErrorFrame.model_validate_json(_data(self._error)).code


def _data(event: bytes) -> bytes:
    return event[event.index(_DATA) + len(_DATA) :].rstrip()
