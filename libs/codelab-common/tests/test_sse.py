"""SSE: keep-alive comments while a stream is idle (over a real socket), readers skip comments."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from codelab_common.sse import KEEP_ALIVE, EventStreamResponse, LineTooLong, iter_sse
from codelab_common.testing import serve_app


class Script:
    """A server whose one endpoint streams `steps`: bytes are events, a float is a pause of that many seconds."""

    def __init__(self, *steps: float | bytes, keep_alive_s: float | None = 0.1) -> None:
        self.steps = steps
        self.keep_alive_s = keep_alive_s
        self.closed = asyncio.Event()
        self.app = Starlette(routes=[Route("/", self._stream)])

    async def _stream(self, request: Request) -> EventStreamResponse:
        return EventStreamResponse(self._events(), keep_alive_s=self.keep_alive_s, headers={"X-Extra": "1"})

    async def _events(self) -> AsyncIterator[bytes]:
        try:
            for step in self.steps:
                if isinstance(step, bytes):
                    yield step
                else:
                    await asyncio.sleep(step)
        finally:
            self.closed.set()


async def read_all(script: Script) -> tuple[aiohttp.ClientResponse, list[tuple[float, bytes]]]:
    """Each body piece as it arrived, with seconds since the request."""
    async with serve_app(script.app) as url, aiohttp.ClientSession() as http, http.get(url) as response:
        started = time.perf_counter()
        pieces = [(time.perf_counter() - started, piece) async for piece in response.content.iter_any()]
        return response, pieces


async def test_an_idle_stream_gets_a_comment_each_interval_and_none_after_its_end() -> None:
    response, pieces = await read_all(Script(b"data: 1\n\n", 0.35, b"data: 2\n\n", 0.05, b"data: 3\n\n"))
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache" and response.headers["x-accel-buffering"] == "no"
    assert response.headers["x-extra"] == "1"
    body = b"".join(piece for _, piece in pieces)
    assert body.startswith(b"data: 1\n\n") and body.endswith(b"data: 2\n\ndata: 3\n\n")
    assert body.count(KEEP_ALIVE) in (2, 3), "one comment per full interval of a 0.35 s pause"
    comments = [at for at, piece in pieces if piece == KEEP_ALIVE]
    assert all(later - earlier > 0.08 for earlier, later in zip([0.0, *comments], comments, strict=False))


async def test_events_faster_than_the_interval_get_no_comment() -> None:
    steps = [item for n in range(20) for item in (0.01, f"data: {n}\n\n".encode())]
    _, pieces = await read_all(Script(*steps, keep_alive_s=0.1))
    assert KEEP_ALIVE not in b"".join(piece for _, piece in pieces)


async def test_no_interval_means_no_comment() -> None:
    _, pieces = await read_all(Script(b"data: 1\n\n", 0.25, b"data: 2\n\n", keep_alive_s=None))
    assert b"".join(piece for _, piece in pieces) == b"data: 1\n\ndata: 2\n\n"


async def test_a_reader_leaving_an_idle_stream_closes_its_source() -> None:
    script = Script(b"data: 1\n\n", 30.0, b"data: never\n\n")
    async with serve_app(script.app) as url, aiohttp.ClientSession() as http:
        response = await http.get(url)
        assert await response.content.readuntil(b"\n\n") == b"data: 1\n\n"
        assert await response.content.readuntil(b"\n\n") == KEEP_ALIVE
        response.close()
        await asyncio.wait_for(script.closed.wait(), 2.0)


async def test_iter_sse_skips_comments() -> None:
    body = b": keep-alive\n\nevent: message\ndata: 1\n\n: keep-alive\n\n:\n\ndata: 2\n: inside\n\n"

    async def lines() -> AsyncIterator[bytes]:
        for line in body.split(b"\n"):
            yield line + b"\n"

    events = [(event.event, event.data) async for event in iter_sse(lines())]
    assert events == [("message", "1"), ("message", "2")]


async def test_iter_sse_takes_chunks_cut_anywhere() -> None:
    """A stream read in whatever chunks the socket gives: cut inside a line, inside a UTF-8 character, between a
    carriage return and its newline; events come out whole and in order."""
    body = 'id: 7\r\nevent: message\r\ndata: {"text":"héllo ☃"}\r\n\r\n: keep-alive\n\ndata: a\ndata: b\n\n'.encode()
    expected = [("message", '{"text":"héllo ☃"}', "7"), ("message", "a\nb", None)]
    for size in (1, 2, 3, 5, 8, 13, len(body)):

        async def chunks(size: int = size) -> AsyncIterator[bytes]:
            for start in range(0, len(body), size):
                yield body[start : start + size]

        events = [(event.event, event.data, event.id) async for event in iter_sse(chunks())]
        assert events == expected, size


async def test_iter_sse_refuses_a_line_beyond_its_limit() -> None:
    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"x" * 100

    async def whole() -> AsyncIterator[bytes]:
        yield b"data: " + b"x" * 2000 + b"\n\ndata: 1\n\n"

    for chunks in (endless, whole):
        with pytest.raises(LineTooLong, match="longer than 1024 bytes"):
            async for _ in iter_sse(chunks(), max_line=1024):
                pass
