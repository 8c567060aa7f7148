"""Server-Sent Events: encoding, a streaming response that keeps idle connections alive, and a parser.

`EventStreamResponse` writes the comment `: keep-alive` whenever `keep_alive_s` seconds pass without a write,
whatever the stream is waiting for (an upstream's next chunk, a model's first token, text a tool-call parser holds
back). Readers skip comments (`iter_sse`, browsers, the OpenAI and Anthropic SDKs); the comment only shows that the
stream is alive, so the idle timeouts of the reader and of proxies in between do not fire while an answer is slow.
The comment is written by a timer beside the stream, not by wrapping the event iterator, so an event costs one
clock read more and the iterator runs undisturbed in the response's own task.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass

from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

KEEP_ALIVE = b": keep-alive\n\n"
DEFAULT_KEEP_ALIVE_S = 15.0
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
"""No caching, and no buffering by nginx-style proxies in between."""


@dataclass(slots=True)
class SSEEvent:
    event: str
    data: str
    id: str | None = None


def encode_event(data: str | bytes, event: str | None = None, event_id: int | None = None) -> bytes:
    """One SSE event; `data` must not contain newlines (JSON from orjson never does)."""
    payload = data.encode() if isinstance(data, str) else data
    head = b"event: " + event.encode() + b"\n" if event else b""
    if event_id is not None:
        head = b"id: %d\n" % event_id + head
    return head + b"data: " + payload + b"\n\n"


MAX_LINE = 32 * 1024 * 1024
"""The longest line a reader takes unless told otherwise."""


class LineTooLong(ValueError):
    """An event stream's line is longer than the reader takes."""


async def iter_sse(chunks: AsyncIterable[bytes], max_line: int | None = None) -> AsyncIterator[SSEEvent]:
    """Events from a byte stream in chunks of any size (aiohttp's `response.content.iter_any()`, or lines); comments
    are skipped. Splitting whole chunks costs far less than reading the stream a line at a time. A line longer than
    `max_line` bytes (MAX_LINE by default) raises LineTooLong."""
    limit = MAX_LINE if max_line is None else max_line
    parser = _Parser()
    rest = b""
    async for chunk in chunks:
        data = rest + chunk if rest else chunk
        lines = data.split(b"\n")
        rest = lines.pop()
        # Only data longer than the limit can hold a longer line: most chunks skip measuring their lines.
        if len(data) > limit and max([len(rest), *map(len, lines)]) > limit:
            raise LineTooLong(f"an event stream line is longer than {limit} bytes")
        for line in lines:
            event = parser.line(line.decode().removesuffix("\r"))
            if event is not None:
                yield event
    if rest:
        parser.line(rest.decode().removesuffix("\r"))
    if parser.data:
        yield SSEEvent(parser.event, "\n".join(parser.data), parser.event_id)


class _Parser:
    __slots__ = ("data", "event", "event_id")

    def __init__(self) -> None:
        self.event: str = "message"
        self.event_id: str | None = None
        self.data: list[str] = []

    def line(self, line: str) -> SSEEvent | None:
        """Take one line (without its end); a blank line completes the event, if it has data."""
        if not line:
            done = SSEEvent(self.event, "\n".join(self.data), self.event_id) if self.data else None
            self.event, self.event_id, self.data = "message", None, []
            return done
        if line.startswith("data:"):
            self.data.append(line[5:].removeprefix(" "))
        elif line.startswith("event:"):
            self.event = line[6:].strip()
        elif line.startswith("id:"):
            self.event_id = line[3:].strip()
        return None


class EventStreamResponse(StreamingResponse):
    """A `text/event-stream` answer (no caching, no proxy buffering) that writes `: keep-alive` comments while idle.

    `keep_alive_s`: the longest the stream stays silent once its headers are sent; None writes no comments.
    """

    media_type = "text/event-stream"

    def __init__(
        self,
        content: AsyncIterable[bytes],
        *,
        keep_alive_s: float | None = DEFAULT_KEEP_ALIVE_S,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        merged = {**SSE_HEADERS, **{name.lower(): value for name, value in (headers or {}).items()}}
        super().__init__(content, status_code=status_code, headers=merged)
        self.keep_alive_s = keep_alive_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.keep_alive_s is None:
            await super().__call__(scope, receive, send)
            return
        keeper = _KeepAlive(send, self.keep_alive_s)
        try:
            await super().__call__(scope, receive, keeper.send)
        finally:
            keeper.stop()


class _KeepAlive:
    """Passes the response's messages on, noting when each was sent; a timer task writes a comment when the last
    write is `interval_s` old. The timer stops before the final message, so a comment never follows the end."""

    __slots__ = ("_interval_s", "_last", "_loop", "_send", "_timer")

    def __init__(self, send: Send, interval_s: float) -> None:
        self._send = send
        self._interval_s = interval_s
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._timer: asyncio.Task[None] | None = None

    async def send(self, message: Message) -> None:
        self._last = self._loop.time()
        if message["type"] == "http.response.start":
            await self._send(message)
            self._timer = asyncio.create_task(self._beat())
            return
        if not message.get("more_body", False):
            self.stop()
        await self._send(message)

    async def _beat(self) -> None:
        comment: Message = {"type": "http.response.body", "body": KEEP_ALIVE, "more_body": True}
        while True:
            await asyncio.sleep(self._last + self._interval_s - self._loop.time())
            if self._loop.time() - self._last >= self._interval_s:
                self._last = self._loop.time()
                try:
                    await self._send(comment)
                except Exception:  # the client is gone: the stream's own next write finds out and ends it
                    return

    def stop(self) -> None:
        """Cancelled, the timer can no longer write: it waits in `sleep` or in the server's flow control, and either
        wakes up with the cancellation, never with a turn to write."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
