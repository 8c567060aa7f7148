"""A deliberately minimal OpenAI-compatible streaming upstream for benchmarks: raw asyncio on uvloop.

Every `POST .../chat/completions` gets the same precomputed answer: a role chunk, `CONTENT_CHUNKS` content chunks,
a finish chunk and `[DONE]`, sent at once (no delay) with chunked transfer encoding. No framework, no JSON parsing,
so the upstream costs next to nothing and the proxy under test is what the figures measure.

    python bench/fast_upstream.py PORT
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass

CONTENT_CHUNKS = 50
MODEL = "bench-model"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


def _event(delta: dict[str, object], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _chunked(part: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(part), part)


def _answer() -> bytes:
    events = [_event({"role": "assistant", "content": ""})]
    events += [_event({"content": f"tok{i} "}) for i in range(CONTENT_CHUNKS)]
    events += [_event({}, "stop"), b"data: [DONE]\n\n"]
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + b"".join(_chunked(e) for e in events) + b"0\r\n\r\n"


ANSWER = _answer()
MODELS = json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]}).encode()
NOT_CHAT = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(MODELS), MODELS)


@dataclass(frozen=True, slots=True)
class Paced:
    """An answer written part by part, `gap_s` apart, the way a real model's tokens arrive."""

    parts: list[bytes]
    gap_s: float


Answer = bytes | Paced


class _Upstream(asyncio.Protocol):
    """HTTP/1.1 keep-alive with Content-Length bodies: enough for aiohttp, httpx and the openai SDK. `answer` gives
    the whole HTTP answer to a chat completion's request body, at once or paced."""

    def __init__(self, answer: Callable[[bytes], Answer]) -> None:
        self._answer = answer
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self._buffer[:end]
            match = _CONTENT_LENGTH.search(head)
            total = end + 4 + (int(match.group(1)) if match else 0)
            if len(self._buffer) < total:
                return
            body, self._buffer = self._buffer[end + 4 : total], self._buffer[total:]
            path = head.split(b" ", 2)[1]
            assert self._transport is not None
            answer = self._answer(body) if path.endswith(b"/chat/completions") else NOT_CHAT
            if isinstance(answer, Paced):
                loop = asyncio.get_running_loop()
                for index, part in enumerate(answer.parts):
                    loop.call_later(index * answer.gap_s, self._write, part)
            else:
                self._transport.write(answer)

    def _write(self, part: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(part)


async def serve(port: int, answer: Callable[[bytes], Answer] = lambda _: ANSWER) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Upstream(answer), "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    import uvloop

    uvloop.run(serve(int(sys.argv[1])))
