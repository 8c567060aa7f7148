"""One client WebSocket: a receive loop that hands the client's frames to agent-runtime, and a follower that
writes the session's frames to the client, from agent-runtime's event log, in the client's dialect.

The follower starts after the `last_seq` the client names (URL parameter, or a `resume` frame), else where this
gateway's last client of the session stopped, else at the running turn's first frame. When agent-runtime cannot be
reached it tells the client once (AGENT_DOWN, no seq) and follows again from its cursor as soon as it can, so a
restart of agent-runtime, or of the gateway, loses and repeats nothing.

Frames the gateway writes itself answer a frame the client sent (a bad frame, BUSY, a result for a call that is not
waiting); they carry no seq and are not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass

import orjson
import structlog
from opentelemetry.trace import Span, SpanKind
from starlette.websockets import WebSocket, WebSocketDisconnect

from codelab_common import tracing
from codelab_common.protocol import (
    IDE_TOOLS,
    SESSION_ID_PATTERN,
    Approval,
    ApprovalSource,
    ErrorCode,
    ErrorFrame,
    Resume,
    StopReason,
    ToolResult,
    UserMessage,
    frame_type,
)
from codelab_gateway.core.metrics import GatewayMetrics
from codelab_gateway.sessions.hub import SessionHub
from codelab_gateway.transport.capabilities import CapabilityError, tools_from_query
from codelab_gateway.transport.dialects import (
    Dialect,
    IdeDialect,
    StreamDialect,
    dialect_named,
    ide_rejection,
)
from codelab_gateway.transport.inbound import FrameError, parse_frame
from codelab_gateway.upstream.agent_client import AgentClient, AgentUnavailable, InputRefused

log = structlog.get_logger(__name__)

POLICY_VIOLATION = 1008
FINAL_MARK = '"is_final":true'
"""How a turn's final frame reads in agent-runtime's JSON (orjson writes no spaces)."""
RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0)
_SESSION_ID = re.compile(SESSION_ID_PATTERN)


@dataclass(frozen=True, slots=True)
class ClientProfile:
    """What a WebSocket path implies about its client: the dialect it reads and the tools it runs by default."""

    dialect: str
    default_tools: tuple[str, ...] | None


STREAM_CLIENT = ClientProfile(StreamDialect.name, None)
IDE_CLIENT = ClientProfile(IdeDialect.name, IDE_TOOLS)


class ClientConnection:
    def __init__(
        self,
        websocket: WebSocket,
        session_id: str,
        dialect: Dialect,
        tools: list[str] | None,
        hub: SessionHub,
        agent: AgentClient,
    ) -> None:
        self.websocket = websocket
        self.session_id = session_id
        self.dialect = dialect
        self.tools = tools
        self._hub = hub
        self._agent = agent
        self._metrics: GatewayMetrics = hub.metrics
        self._send_lock = asyncio.Lock()
        self._follower: asyncio.Task[None] | None = None
        self._turn_span: Span | None = None

    @property
    def dialect_name(self) -> str:
        return self.dialect.name

    # --- outbound --------------------------------------------------------------------------------------------------

    def follow(self, after: int | None) -> None:
        """(Re)start writing the session's frames after seq `after` (None: see the module's docstring)."""
        if self._follower is not None:
            self._follower.cancel()
        self._follower = asyncio.create_task(self._follow(after), name=f"gateway-follow-{self.session_id}")

    async def _follow(self, cursor: int | None) -> None:
        told = False
        failures = 0
        while True:
            if cursor is None:  # nothing followed yet: an input taken meanwhile says where its frames start
                cursor = self._hub.delivered(self.session_id)
            try:
                async for seq, text in self._agent.follow(self.session_id, cursor):
                    told, failures = False, 0
                    self._saw(frame_type(text), text)
                    for rendered in self.dialect.render(text):
                        await self.send(rendered)
                        self._metrics.frame_sent(frame_type(rendered))
                    cursor = seq
                    if not self.dialect.holding:
                        self._hub.mark_delivered(self.session_id, seq)
            except AgentUnavailable as exc:
                if not told:
                    log.warning("following the session failed", error=exc.message)
                    await self.reject(exc.code, f"{exc.message}; the session goes on when it is back")
                    told = True
            except (WebSocketDisconnect, OSError, RuntimeError):
                return  # the socket is gone; the receive loop ends the connection
            await asyncio.sleep(RETRY_DELAYS_S[min(failures, len(RETRY_DELAYS_S) - 1)])
            failures += 1

    async def send(self, text: str) -> None:
        async with self._send_lock:
            await self.websocket.send_text(text)

    async def reject(self, code: ErrorCode, text: str, **extra: str | None) -> None:
        """Answer a frame of the client's with an error frame of the gateway's own (no seq)."""
        self._metrics.errors.labels(code.value).inc()
        self._metrics.frame_sent("error")
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
            await self.send(ErrorFrame.of(code, text, **extra).model_dump_json(exclude_none=True))

    # --- inbound ---------------------------------------------------------------------------------------------------

    async def receive(self, max_bytes: int) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self.reject(ErrorCode.INVALID_FORMAT, "binary frames are not supported; send JSON text frames")
                continue
            try:
                await self._take(text, max_bytes)
            except (WebSocketDisconnect, OSError, RuntimeError):
                raise
            except Exception:  # a frame never ends the connection: the client is told, the socket stays
                log.exception("handling a client frame failed")
                await self.reject(ErrorCode.INTERNAL, "the gateway failed to handle this frame; send it again")

    async def _take(self, text: str, max_bytes: int) -> None:
        try:
            frame = parse_frame(text, max_bytes)
        except FrameError as exc:
            await self.reject(ErrorCode.INVALID_FORMAT, str(exc))
            return
        if frame is None:
            return
        self._metrics.frames_in.labels(frame.type).inc()
        if isinstance(frame, Resume):
            self.follow(frame.last_seq)
            return
        if isinstance(frame, UserMessage):
            self._start_turn(frame)
        source = ApprovalSource.APPROVAL
        if isinstance(self.dialect, IdeDialect) and (rejection := ide_rejection(frame)) is not None:
            frame, source = rejection, ApprovalSource.IDE_REJECTION
        span = tracing.start_span(
            f"input {frame.type}",
            kind=SpanKind.CLIENT,
            parent=self._turn_span,
            attributes={"codelab.session_id": self.session_id},
        )
        with tracing.ending(span, current=True):
            try:
                accepted = await self._agent.submit(
                    self.session_id, frame, self.tools, tracing.trace_headers(span), approval_source=source
                )
                if self._hub.delivered(self.session_id) is None:
                    # Whatever came before this input the client has no need of; on a return it starts here.
                    self._hub.mark_delivered(self.session_id, accepted.after_seq)
            except (InputRefused, AgentUnavailable) as exc:
                call_id = frame.call_id if isinstance(frame, ToolResult | Approval) else None
                message_id = getattr(frame, "message_id", None)
                await self.reject(exc.code, exc.message, call_id=call_id, message_id=message_id)
                if isinstance(frame, UserMessage):
                    self._end_turn(exc.code.value)

    # --- the turn's trace ------------------------------------------------------------------------------------------

    def _start_turn(self, message: UserMessage) -> None:
        """One trace per user message: a root span here, every input of the turn its child, ended by the turn's
        final frame (or the socket's end)."""
        self._end_turn("superseded")
        self._turn_span = tracing.start_span(
            "turn",
            kind=SpanKind.SERVER,
            parent=tracing.new_trace(),
            attributes={"codelab.session_id": self.session_id, "codelab.message_id": message.message_id or ""},
        )

    def _end_turn(self, outcome: str) -> None:
        span, self._turn_span = self._turn_span, None
        if span is not None:
            failed = outcome != StopReason.COMPLETED.value
            tracing.finish(span, {"codelab.turn.outcome": outcome}, error=outcome if failed else None)

    def _saw(self, kind: str, text: str) -> None:
        if self._turn_span is not None and kind == "assistant_message" and FINAL_MARK in text:
            self._end_turn(str(orjson.loads(text).get("stop_reason") or StopReason.COMPLETED.value))

    async def close(self, code: int, reason: str) -> None:
        await self.stop()
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
            await self.websocket.close(code, reason)

    async def stop(self) -> None:
        self._end_turn("disconnected")
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None


async def serve_client(
    websocket: WebSocket,
    hub: SessionHub,
    agent: AgentClient,
    session_id: str,
    profile: ClientProfile,
    max_frame_bytes: int,
) -> None:
    """Run one client WebSocket until it disconnects or is replaced."""
    await websocket.accept()
    if not _SESSION_ID.fullmatch(session_id):
        await _refuse(websocket, ErrorCode.INVALID_SESSION, f"invalid session id; it must match {SESSION_ID_PATTERN}")
        return
    query = websocket.query_params
    try:
        capabilities = tools_from_query(query.get("tools"), profile.default_tools)
        last_seq = _last_seq(query.get("last_seq"))
    except (CapabilityError, ValueError) as exc:
        await _refuse(websocket, ErrorCode.INVALID_FORMAT, str(exc))
        return
    connection = ClientConnection(websocket, session_id, dialect_named(profile.dialect), capabilities.tools, hub, agent)
    hub.metrics.connections.labels(profile.dialect).inc()
    hub.metrics.live_connections.inc()
    with structlog.contextvars.bound_contextvars(session_id=session_id):
        log.info("client connected", dialect=profile.dialect, last_seq=last_seq)
        await hub.attach(session_id, connection)
        if last_seq is not None:
            hub.metrics.resumes.inc()
        connection.follow(last_seq if last_seq is not None else hub.delivered(session_id))
        try:
            await connection.receive(max_frame_bytes)
        finally:
            hub.detach(session_id, connection)
            await connection.stop()
            hub.metrics.live_connections.dec()
            log.info("client disconnected")


def _last_seq(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit():
        raise ValueError(f"last_seq must be a whole number of 0 or more, got {raw[:32]!r}")
    return int(raw)


async def _refuse(websocket: WebSocket, code: ErrorCode, text: str) -> None:
    frame = ErrorFrame.of(code, text).model_dump_json(exclude_none=True)
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
        await websocket.send_text(frame)
        await websocket.close(POLICY_VIOLATION, code.value)
