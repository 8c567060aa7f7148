"""A session's outbound event log: every frame meant for the client, numbered in order by one writer.

Connections are readers that tail the log from a cursor, so a turn keeps writing while no client is connected and
a client that reconnects reads on from where delivery stopped. The in-memory log keeps the last `capacity` entries;
a Redis-streams log (XADD/XRANGE with the same seq numbers) can take its place when gateways are scaled out.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class Entry:
    """One outbound frame in canonical (stream dialect) form.

    `text` is the exact JSON sent on the stream dialect (agent-runtime's bytes, never re-serialised); `frame` is
    the same frame parsed once, for dialects and bookkeeping that read fields.
    """

    seq: int
    type: str
    text: str
    frame: dict[str, Any]


def encode_frame(frame: BaseModel) -> tuple[dict[str, Any], str]:
    """A frame the gateway writes itself (ACK, error) as its dict and its JSON text, nulls left out."""
    data: dict[str, Any] = frame.model_dump(mode="json", exclude_none=True)
    return data, orjson.dumps(data).decode()


class EventLog(Protocol):
    @property
    def last_seq(self) -> int: ...

    def append(self, type: str, text: str, frame: dict[str, Any]) -> int: ...

    def after(self, seq: int) -> list[Entry]: ...

    async def wait_after(self, seq: int) -> None: ...


class OutboundLog:
    """In-memory EventLog: a bounded deque; the oldest entries fall off once `capacity` is reached."""

    def __init__(self, capacity: int) -> None:
        self._entries: deque[Entry] = deque(maxlen=capacity)
        self._last_seq = 0
        self._appended = asyncio.Event()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    @property
    def first_seq(self) -> int:
        """The oldest seq still kept (last_seq + 1 when empty)."""
        return self._entries[0].seq if self._entries else self._last_seq + 1

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, type: str, text: str, frame: dict[str, Any]) -> int:
        self._last_seq += 1
        self._entries.append(Entry(self._last_seq, type, text, frame))
        self._appended.set()
        return self._last_seq

    def after(self, seq: int) -> list[Entry]:
        """Entries newer than `seq`, oldest first (walks from the tail: readers are usually close behind)."""
        newer: list[Entry] = []
        for entry in reversed(self._entries):
            if entry.seq <= seq:
                break
            newer.append(entry)
        newer.reverse()
        return newer

    async def wait_after(self, seq: int) -> None:
        """Return once an entry newer than `seq` exists."""
        while self._last_seq <= seq:
            self._appended.clear()
            await self._appended.wait()
