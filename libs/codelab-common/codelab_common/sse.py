"""Server-Sent Events: encoding for responses and an incremental parser for streamed bodies."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str
    data: str


def encode_event(data: str | bytes, event: str | None = None) -> bytes:
    """One SSE event; `data` must not contain newlines (JSON from orjson never does)."""
    payload = data.encode() if isinstance(data, str) else data
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + payload + b"\n\n"


async def iter_sse(lines: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Events from a stream of lines (an aiohttp `response.content` iterates this way)."""
    event = "message"
    data: list[str] = []
    async for raw in lines:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield SSEEvent(event, "\n".join(data))
            event, data = "message", []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            event = line[6:].strip()
    if data:
        yield SSEEvent(event, "\n".join(data))
