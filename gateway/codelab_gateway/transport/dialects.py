"""Dialects: how one session's frames are rendered for a kind of client.

Both dialects read the same frames of agent-runtime's event log; a dialect only decides which frames a client sees
and in what shape. `stream` (the seed's `/ws/`) sends every frame as it is: ACKs, token deltas, extension frames,
byte for byte. `ide` (the CodeLab IDE's `/api/v1/ws/`) shows each received frame as a chat bubble, so it gets no
ACKs or extension frames, and the assistant's deltas are joined into one whole `assistant_message` (is_final true),
flushed when a tool_call or an error follows or the message ends; the joined message carries the seq of the frame
that flushed it. A `plan_update` becomes one message of its own, the plan as a checklist (`plan_progress` frames are
left out: a bubble per step would bury the answer; the next `plan_update` shows where the plan stands).

Inbound, the IDE rejects a tool call by answering it with a `tool_result` whose `error` begins
`Операция отклонена:`; `ide_rejection` turns that into the typed `approval {decision: reject}` every client sends,
here and only here, so nothing downstream reads an error's wording.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from codelab_common.protocol import Approval, ApprovalDecision, ToolResult, frame_type

IDE_REJECTION_PREFIX = "Операция отклонена:"


class Dialect(Protocol):
    name: str

    def render(self, text: str) -> list[str]:
        """The texts to send for one logged frame (none, or several when held text is flushed)."""
        ...

    @property
    def holding(self) -> bool:
        """True while rendered output still depends on frames already read (they are not delivered yet)."""
        ...


class StreamDialect:
    """Every frame as agent-runtime wrote it."""

    name = "stream"
    holding = False

    def render(self, text: str) -> list[str]:
        return [text]


class IdeDialect:
    """Whole assistant messages and only the frame types the IDE knows."""

    name = "ide"
    PASSED_THROUGH = frozenset({"tool_call", "error"})

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._message_id: str | None = None

    @property
    def holding(self) -> bool:
        return bool(self._parts)

    def render(self, text: str) -> list[str]:
        kind = frame_type(text)
        if kind == "plan_update":
            plan: dict[str, Any] = orjson.loads(text)
            held = self._flush(None)
            self._message_id = plan.get("message_id") or self._message_id
            return [*held, self._message(plan_checklist(plan.get("steps") or []), plan.get("seq"))]
        if kind == "assistant_message":
            frame: dict[str, Any] = orjson.loads(text)
            self._parts.append(frame.get("content") or "")
            self._message_id = frame.get("message_id") or self._message_id
            return self._flush(frame.get("seq")) if frame.get("is_final") else []
        if kind in self.PASSED_THROUGH:
            return [*self._flush(None), text]
        return []

    def _flush(self, seq: int | None) -> list[str]:
        text = "".join(self._parts)
        self._parts.clear()
        if not text:
            return []
        return [self._message(text, seq)]

    def _message(self, text: str, seq: int | None) -> str:
        message: dict[str, Any] = {
            "type": "assistant_message",
            "message_id": self._message_id or "",
            "content": text,
            "token": text,
            "is_final": True,
        }
        if seq is not None:
            message["seq"] = seq
        return orjson.dumps(message).decode()


PLAN_MARKS = {"pending": "[ ]", "running": "[~]", "done": "[x]", "error": "[!]", "blocked": "[-]"}


def plan_checklist(steps: list[dict[str, Any]]) -> str:
    """A plan as text for a client that shows only messages: one line per step, its status as a box."""
    lines = ["Plan:"]
    for step in steps:
        mark = PLAN_MARKS.get(str(step.get("status")), "[ ]")
        result = f" — {step['result']}" if step.get("result") else ""
        lines.append(f"{mark} {step.get('text', '')}{result}")
    return "\n".join(lines)


def dialect_named(name: str) -> Dialect:
    if name == IdeDialect.name:
        return IdeDialect()
    if name == StreamDialect.name:
        return StreamDialect()
    raise ValueError(f"unknown dialect {name!r}")


def ide_rejection(frame: object) -> Approval | None:
    """The IDE's rejecting `tool_result` as an `approval` that rejects the call (its text after the prefix is the
    user's feedback); None for any other frame."""
    if not isinstance(frame, ToolResult) or not (frame.error or "").startswith(IDE_REJECTION_PREFIX):
        return None
    feedback = (frame.error or "")[len(IDE_REJECTION_PREFIX) :].strip()[:4000]
    if feedback in ("", frame.tool_name):
        feedback = ""  # the IDE writes its tool's name there, not the user's words
    return Approval(call_id=frame.call_id, decision=ApprovalDecision.REJECT, feedback=feedback or None)
