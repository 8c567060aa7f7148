"""The client side of the gateway's WebSocket protocol, shared by `codelab chat`, `codelab run` and tests.

An `AgentSession` connects to `{url}/ws/{session_id}?tools=...`, sends a user message, and reads frames until the
turn ends: it streams the answer to its listener, runs every `tool_call` with the tool executor (asking the
approver first when the call requires approval) and sends the `tool_result`. When the connection drops it
reconnects with the same session id; the gateway keeps the session and resends what was not delivered, so the turn
goes on. In the other direction, a `tool_result` sent just before the connection broke may be lost; results
with no frame received after them are sent again on the new connection, and the gateway's UNKNOWN_CALL_ID answer
to a duplicate is then dropped here, since it only says the first copy arrived. A user message is never sent
twice: a second copy would start a second turn.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import orjson
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from codelab_client.approvals import Approver, Decision, rejection_error
from codelab_client.events import SessionListener
from codelab_client.tools import ToolExecutor
from codelab_common.protocol import SESSION_ID_PATTERN, ErrorCode, ToolCall

NON_TERMINAL_ERRORS = frozenset({ErrorCode.TOOL_TIMEOUT, ErrorCode.UNKNOWN_CALL_ID, ErrorCode.STEP_LIMIT})
"""Errors after which the turn goes on (STEP_LIMIT is followed by the closing assistant_message)."""

FINAL_CLOSE_CODES = frozenset({1008, 4000, 4401})
"""Closes after which reconnecting is pointless: refused session or tools, replaced by another client, auth."""

RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
MAX_FRAME_BYTES = 1_000_000
"""Keeps a tool_result under the gateway's default inbound frame limit (1 MiB)."""

_SESSION_ID = re.compile(SESSION_ID_PATTERN)


class SessionClosed(Exception):
    """The gateway cannot be reached, refused the session, or handed it to another client."""


class TurnStatus(StrEnum):
    COMPLETED = "completed"
    """The closing assistant_message arrived (errors that did not end the turn may be in `errors`)."""
    FAILED = "failed"
    """An error frame ended the turn."""
    TIMED_OUT = "timed_out"
    """The caller's time limit passed first."""


@dataclass
class TurnResult:
    status: TurnStatus
    message_id: str
    text: str = ""
    frames: list[dict[str, Any]] = field(default_factory=list)
    """Every frame received during the turn, in order."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status is TurnStatus.COMPLETED and not self.errors


def new_session_id() -> str:
    return f"cli-{uuid.uuid4().hex[:16]}"


def session_url(base_url: str, session_id: str, tools: tuple[str, ...] | list[str]) -> str:
    """`{base}/ws/{session_id}?tools=a,b`; an `http(s)://` base is turned into `ws(s)://`."""
    base = base_url.strip().rstrip("/")
    if base.startswith("http://") or base.startswith("https://"):
        base = "ws" + base.removeprefix("http")
    if not base.startswith(("ws://", "wss://")):
        base = "ws://" + base
    return f"{base}/ws/{quote(session_id, safe='')}?tools={','.join(tools)}"


class AgentSession:
    """One conversation with the agent over the gateway; use as `async with AgentSession(...) as session:`."""

    def __init__(
        self,
        url: str,
        executor: ToolExecutor,
        approver: Approver,
        *,
        session_id: str | None = None,
        listener: SessionListener | None = None,
        open_timeout: float = 10.0,
        reconnect_delays: tuple[float, ...] = RECONNECT_DELAYS_S,
    ) -> None:
        self.session_id = session_id or new_session_id()
        if not _SESSION_ID.fullmatch(self.session_id):
            raise ValueError(f"invalid session id {self.session_id!r}; it must match {SESSION_ID_PATTERN}")
        self.url = session_url(url, self.session_id, executor.supported_tools)
        self.executor = executor
        self.approver = approver
        self.listener = listener or SessionListener()
        self._open_timeout = open_timeout
        self._reconnect_delays = reconnect_delays
        self._ws: ClientConnection | None = None
        self._unconfirmed: dict[str, str] = {}
        """call_id → tool_result JSON sent with no frame received since; resent after a reconnect."""
        self._resent: set[str] = set()

    async def __aenter__(self) -> AgentSession:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def connect(self) -> None:
        try:
            self._ws = await connect(
                self.url,
                open_timeout=self._open_timeout,
                max_size=32 * 1024 * 1024,
                close_timeout=2,
                proxy=None,
            )
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise SessionClosed(f"cannot connect to {self.url.split('?')[0]}: {exc or type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    def drop_connection(self) -> None:
        """Cut the connection as a network failure would; the next send or receive reconnects."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def run_turn(self, content: str, *, timeout: float | None = None) -> TurnResult:
        """Send one user message and handle frames until the turn ends (or `timeout` seconds pass)."""
        result = TurnResult(TurnStatus.FAILED, message_id=f"msg_{uuid.uuid4().hex}")
        await self._send({"type": "user_message", "content": content, "role": "user", "message_id": result.message_id})
        try:
            async with asyncio.timeout(timeout):
                result.status = await self._read_turn(result)
        except TimeoutError:
            result.status = TurnStatus.TIMED_OUT
        return result

    async def _read_turn(self, result: TurnResult) -> TurnStatus:
        parts: list[str] = []
        try:
            while True:
                frame = await self._receive()
                result.frames.append(frame)
                self.listener.on_frame(frame)
                kind = frame.get("type")
                if kind == "assistant_message":
                    text = frame.get("content") or ""
                    if text:
                        parts.append(text)
                        self.listener.on_delta(text)
                    if frame.get("is_final", True):
                        self.listener.on_final(frame)
                        return TurnStatus.COMPLETED
                elif kind == "tool_call":
                    result.tool_calls.append(frame)
                    await self._handle_tool_call(frame)
                elif kind == "error":
                    if self._is_duplicate_echo(frame):
                        continue
                    result.errors.append(frame)
                    self.listener.on_error(frame)
                    if frame.get("code") not in NON_TERMINAL_ERRORS:
                        return TurnStatus.FAILED
                elif kind == "ack":
                    self.listener.on_ack(frame)
                else:
                    self.listener.on_unknown(frame)
        finally:
            result.text = "".join(parts)

    async def _handle_tool_call(self, frame: dict[str, Any]) -> None:
        try:
            call = ToolCall.model_validate(frame)
        except ValidationError as exc:
            call_id = frame.get("call_id")
            if isinstance(call_id, str) and call_id:
                invalid = f"[invalid_tool_call] {exc.errors()[0]['msg']}"
                await self._send({"type": "tool_result", "call_id": call_id, "error": invalid})
            self.listener.on_unknown(frame)
            return
        self.listener.on_tool_call(call)
        decision = await self.approver(call) if call.requires_approval else Decision(True)
        result: dict[str, Any] | str | None
        error: str | None
        if decision.approved:
            outcome = await self.executor.execute(call.tool_name, call.arguments)
            result, error = outcome.result, outcome.error
        else:
            result, error = None, rejection_error(decision)
        reply: dict[str, Any] = {"type": "tool_result", "call_id": call.call_id, "tool_name": call.tool_name}
        reply["result" if error is None else "error"] = result if error is None else error
        if len(orjson.dumps(reply)) > MAX_FRAME_BYTES:
            result, error = None, "[result_too_large] the result is over 1 MB; ask for less (a line range, a subfolder)"
            reply = {"type": "tool_result", "call_id": call.call_id, "tool_name": call.tool_name, "error": error}
        self.listener.on_tool_result(call, result, error)
        await self._send(reply)

    def _is_duplicate_echo(self, frame: dict[str, Any]) -> bool:
        return frame.get("code") == ErrorCode.UNKNOWN_CALL_ID and frame.get("call_id") in self._resent

    async def _send(self, frame: dict[str, Any]) -> None:
        data = orjson.dumps(frame).decode()
        if frame["type"] == "tool_result":
            self._unconfirmed[frame["call_id"]] = data
        while True:
            ws = await self._live()
            try:
                await ws.send(data)
                return
            except ConnectionClosed as exc:
                await self._reconnect(exc)

    async def _receive(self) -> dict[str, Any]:
        while True:
            ws = await self._live()
            try:
                raw = await ws.recv()
            except ConnectionClosed as exc:
                await self._reconnect(exc)
                continue
            self._unconfirmed.clear()
            try:
                frame = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(frame, dict):
                return frame

    async def _live(self) -> ClientConnection:
        if self._ws is None:
            await self.connect()
        assert self._ws is not None
        return self._ws

    async def _reconnect(self, closed: ConnectionClosed) -> None:
        code = closed.rcvd.code if closed.rcvd else None
        reason = closed.rcvd.reason if closed.rcvd else ""
        self._ws = None
        if code in FINAL_CLOSE_CODES:
            raise SessionClosed(f"the gateway closed the session ({code} {reason})".replace(" )", ")")) from closed
        why = f"connection lost ({code} {reason})".strip() if code else "connection lost"
        for attempt, delay in enumerate(self._reconnect_delays, start=1):
            self.listener.on_reconnecting(attempt, why)
            await asyncio.sleep(delay)
            try:
                await self.connect()
                for call_id, data in list(self._unconfirmed.items()):
                    assert self._ws is not None
                    await self._ws.send(data)
                    self._resent.add(call_id)
            except (SessionClosed, ConnectionClosed):
                self._ws = None
                continue
            self.listener.on_reconnected()
            return
        raise SessionClosed(f"lost the connection to the gateway and could not reconnect ({why})") from closed
