"""Dialects: how one session's outbound event stream is rendered for a kind of client.

Both dialects read the same log entries; a dialect only decides which frames a client sees and in what shape.
`stream` (the seed's `/ws/`) sends every frame as it is: ACKs, token deltas, extension frames. `ide` (the CodeLab
IDE's `/api/v1/ws/`) shows each received frame as a chat bubble, so it gets no ACKs or extension frames, and the
assistant's deltas are joined into one whole `assistant_message` (is_final true), flushed when a tool_call or an
error follows or the message ends.
"""

from __future__ import annotations

from typing import Protocol

import orjson

from codelab_gateway.services.outbound_log import Entry


class Dialect(Protocol):
    name: str

    def render(self, entry: Entry) -> list[str]:
        """The texts to send for `entry` (none, or several when held text is flushed)."""
        ...

    @property
    def holding(self) -> bool:
        """True while rendered output still depends on entries already read (they are not delivered yet)."""
        ...


class StreamDialect:
    """Every frame as agent-runtime or the gateway wrote it, byte for byte."""

    name = "stream"
    holding = False

    def render(self, entry: Entry) -> list[str]:
        return [entry.text]


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

    def render(self, entry: Entry) -> list[str]:
        if entry.type == "assistant_message":
            frame = entry.frame
            self._parts.append(frame.get("content") or "")
            self._message_id = frame.get("message_id") or self._message_id
            return self._flush() if frame.get("is_final") else []
        if entry.type in self.PASSED_THROUGH:
            return [*self._flush(), entry.text]
        return []

    def _flush(self) -> list[str]:
        text = "".join(self._parts)
        self._parts.clear()
        if not text:
            return []
        message = {
            "type": "assistant_message",
            "message_id": self._message_id or "",
            "content": text,
            "token": text,
            "is_final": True,
        }
        return [orjson.dumps(message).decode()]


def dialect_named(name: str) -> Dialect:
    if name == IdeDialect.name:
        return IdeDialect()
    if name == StreamDialect.name:
        return StreamDialect()
    raise ValueError(f"unknown dialect {name!r}")
