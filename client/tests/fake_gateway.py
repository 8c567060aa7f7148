"""A scripted stand-in for the gateway's `/ws/` socket: the test plays the gateway frame by frame.

`FakeGateway.serve()` listens on a free loopback port; each connection the client opens is handed to the test
(`await gateway.accept()`), which reads the client's frames and writes the gateway's, with or without `seq`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection, serve


class FakeConnection:
    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        assert ws.request is not None
        self.path = ws.request.path
        self.closed = asyncio.Event()

    @property
    def query(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(urlsplit(self.path).query).items()}

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        frame: dict[str, Any] = orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        return frame

    async def send(self, *frames: dict[str, Any]) -> None:
        for frame in frames:
            await self.ws.send(orjson.dumps(frame).decode())

    async def silent(self, within: float = 0.3) -> None:
        """Assert that the client sends nothing for `within` seconds."""
        try:
            frame = await asyncio.wait_for(self.ws.recv(), within)
        except TimeoutError:
            return
        raise AssertionError(f"expected no frame, got {frame!r}")

    def drop(self) -> None:
        """Cut the connection as a network failure would."""
        self.ws.transport.abort()


class FakeGateway:
    def __init__(self) -> None:
        self.url = ""
        self._accepted: asyncio.Queue[FakeConnection] = asyncio.Queue()

    async def accept(self, timeout: float = 5.0) -> FakeConnection:
        return await asyncio.wait_for(self._accepted.get(), timeout)

    async def _handle(self, ws: ServerConnection) -> None:
        connection = FakeConnection(ws)
        await self._accepted.put(connection)
        await ws.wait_closed()
        connection.closed.set()

    @asynccontextmanager
    async def serve(self) -> AsyncIterator[FakeGateway]:
        async with serve(self._handle, "127.0.0.1", 0, ping_interval=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}"
            yield self


def ack(message_id: str, seq: int) -> dict[str, Any]:
    return {"type": "ack", "status": "received", "message_id": message_id, "seq": seq}


def delta(message_id: str, seq: int, text: str) -> dict[str, Any]:
    frame = {"type": "assistant_message", "message_id": message_id, "content": text, "token": text, "is_final": False}
    return {**frame, "seq": seq}


def final(message_id: str, seq: int, stop_reason: str = "completed") -> dict[str, Any]:
    return {
        "type": "assistant_message",
        "message_id": message_id,
        "content": "",
        "token": "",
        "is_final": True,
        "stop_reason": stop_reason,
        "seq": seq,
    }


def tool_call(
    message_id: str, seq: int, call_id: str, tool: str, arguments: dict[str, Any], *, approval: bool = False
) -> dict[str, Any]:
    return {
        "type": "tool_call",
        "call_id": call_id,
        "tool_name": tool,
        "arguments": arguments,
        "requires_approval": approval,
        "message_id": message_id,
        "is_final": True,
        "seq": seq,
    }


def approval_recorded(
    message_id: str, seq: int, call_id: str, tool: str, arguments: dict[str, Any], decision: str = "approve"
) -> dict[str, Any]:
    return {
        "type": "approval_recorded",
        "call_id": call_id,
        "tool_name": tool,
        "decision": decision,
        "arguments": arguments,
        "source": "approval",
        "decided_at": 1.0,
        "message_id": message_id,
        "seq": seq,
    }


def error(code: str, text: str, seq: int | None = None, **ids: str) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "content": text, "error": text, **ids}
    if seq is not None:
        frame["seq"] = seq
    return frame
