"""One client WebSocket: a receive loop that hands the client's frames to agent-runtime, and a follower that
writes the session's frames to the client, from agent-runtime's event log, in the client's dialect.

The follower starts after the `last_seq` the client names (URL parameter, or a `resume` frame), else where this
gateway's last client of the session stopped, else at the running turn's first frame. It stops once the session has
been idle for `follow_idle_s` (every frame written, the last one closed a turn), so an idle connection holds no stream
to agent-runtime; an input of the client's that agent-runtime accepts starts it again from where it stopped. When
agent-runtime cannot be reached it tells the client once (AGENT_DOWN, no seq) and follows again from its cursor as
soon as it can, so a restart of agent-runtime, or of the gateway, loses and repeats nothing.

Frames the gateway writes itself answer a frame the client sent (a bad frame, BUSY, a result for a call that is not
waiting); they carry no seq and are not replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from typing import Literal

import orjson
import structlog
from opentelemetry.trace import Span, SpanKind
from starlette.websockets import WebSocket, WebSocketDisconnect

from codelab_common import tracing
from codelab_common.http_errors import error_response
from codelab_common.protocol import (
    IDE_TOOLS,
    MAX_SEQ,
    SESSION_ID_PATTERN,
    Approval,
    ApprovalSource,
    ErrorCode,
    ErrorFrame,
    Resume,
    StopReason,
    ToolResult,
    UserMessage,
    ends_turn,
    frame_type,
)
from codelab_gateway.core.config import Settings
from codelab_gateway.core.metrics import GatewayMetrics
from codelab_gateway.sessions.hub import SessionHub
from codelab_gateway.transport.auth import AuthError, ClientAuthenticator, Principal
from codelab_gateway.transport.capabilities import CapabilityError, tools_from_query
from codelab_gateway.transport.dialects import (
    Dialect,
    IdeDialect,
    StreamDialect,
    dialect_named,
    ide_rejection,
)
from codelab_gateway.transport.inbound import FrameError, parse_frame
from codelab_gateway.transport.limits import DropWindow, FrameRate, LogBudget, Refusal, handshake_refusal
from codelab_gateway.upstream.agent_client import AgentClient, AgentUnavailable, InputRefused

log = structlog.get_logger(__name__)

POLICY_VIOLATION = 1008
GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013
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
        principal: Principal,
        settings: Settings,
    ) -> None:
        self.websocket = websocket
        self.session_id = session_id
        self.dialect = dialect
        self.tools = tools
        self.principal = principal
        self._hub = hub
        self._agent = agent
        self._settings = settings
        self._metrics: GatewayMetrics = hub.metrics
        self._send_lock = asyncio.Lock()
        self._follower: asyncio.Task[None] | None = None
        self._cursor: int | None = None
        """The seq of the last frame the follower took (None: none yet)."""
        self._awaited: int | None = None
        """An input accepted while the follower ran: its frames come after this seq. Should the stream end idle
        before the follower took one of them (agent-runtime decided just before the input came), it follows again."""
        self._turn_span: Span | None = None
        self._rate = FrameRate(settings.frames_per_second, settings.frame_burst)
        self._drops = DropWindow()
        self._log_budget = LogBudget()

    @property
    def dialect_name(self) -> str:
        return self.dialect.name

    @property
    def principal_name(self) -> str | None:
        return self.principal.name

    # --- outbound --------------------------------------------------------------------------------------------------

    def follow(self, after: int | None) -> None:
        """(Re)start writing the session's frames after seq `after` (None: see the module's docstring)."""
        if self._follower is not None:
            self._follower.cancel()
        self._cursor = after
        self._follower = asyncio.create_task(self._follow(), name=f"gateway-follow-{self.session_id}")

    def follow_on(self, after_seq: int) -> None:
        """An input was accepted (its frames come after `after_seq`): follow the session again if the follower
        stopped."""
        if self._follower is None or self._follower.done():
            self._follower = asyncio.create_task(self._follow(), name=f"gateway-follow-{self.session_id}")
        else:
            self._awaited = after_seq

    async def _follow(self) -> None:
        """Write the session's frames from the cursor until the session is idle (then the connection holds no stream
        to agent-runtime until its client's next input is accepted: `follow_on`)."""
        self._metrics.following.inc()
        try:
            await self._follow_until_idle()
        finally:
            self._metrics.following.dec()

    async def _follow_until_idle(self) -> None:
        told = False
        failures = 0
        while True:
            if self._cursor is None:  # nothing followed yet: an input taken meanwhile says where its frames start
                self._cursor = self._hub.delivered(self.session_id)
            try:
                async for seq, text in self._agent.follow(self.session_id, self._cursor, self.principal.name):
                    told, failures = False, 0
                    self._saw(text)
                    for rendered in self.dialect.render(text):
                        await self.send(rendered)
                        self._metrics.frame_sent(frame_type(rendered))
                    self._cursor = seq
                    if not self.dialect.holding:
                        self._hub.mark_delivered(self.session_id, seq)
                awaited, self._awaited = self._awaited, None
                if awaited is None or (self._cursor or 0) > awaited:
                    return
                continue
            except AgentUnavailable as exc:
                if not told:
                    log.warning("following the session failed", error=exc.message)
                    await self.reject(exc.code, f"{exc.message}; the session goes on when it is back")
                    told = True
            except TimeoutError:
                log.info("client is not reading; disconnected", waited_s=self._settings.send_timeout_s)
                with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
                    await self.websocket.close(POLICY_VIOLATION, "not reading: resume with last_seq")
                return
            except (WebSocketDisconnect, OSError, RuntimeError):
                return  # the socket is gone; the receive loop ends the connection
            await asyncio.sleep(RETRY_DELAYS_S[min(failures, len(RETRY_DELAYS_S) - 1)])
            failures += 1

    async def send(self, text: str) -> None:
        """Write one frame; TimeoutError when the client has not taken it within `send_timeout_s` (what waits
        for a slow client is this one frame and the transport's buffer, never a queue)."""
        async with self._send_lock, asyncio.timeout(self._settings.send_timeout_s):
            await self.websocket.send_text(text)

    async def reject(self, code: ErrorCode, text: str, **extra: str | None) -> None:
        """Answer a frame of the client's with an error frame of the gateway's own (no seq)."""
        self._metrics.errors.labels(code.value).inc()
        self._metrics.frame_sent("error")
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError, TimeoutError):
            await self.send(ErrorFrame.of(code, text, **extra).model_dump_json(exclude_none=True))

    # --- inbound ---------------------------------------------------------------------------------------------------

    async def receive(self) -> None:
        idle = self._settings.idle_timeout_s or None
        while True:
            try:
                async with asyncio.timeout(idle):
                    message = await self.websocket.receive()
            except TimeoutError:
                await self.close(GOING_AWAY, "idle")
                return
            if message["type"] == "websocket.disconnect":
                return
            admitted = await self._admit()
            if admitted == "closed":
                return
            if admitted == "dropped":
                continue
            text = message.get("text")
            if text is None:
                await self.reject(ErrorCode.INVALID_FORMAT, "binary frames are not supported; send JSON text frames")
                continue
            try:
                await self._take(text)
            except (WebSocketDisconnect, OSError, RuntimeError):
                raise
            except Exception:  # a frame never ends the connection: the client is told, the socket stays
                if (suppressed := self._log_budget.allow()) is not None:
                    log.exception("handling a client frame failed", suppressed=suppressed)
                await self.reject(ErrorCode.INTERNAL, "the gateway failed to handle this frame; send it again")

    async def _admit(self) -> Literal["taken", "dropped", "closed"]:
        """Whether the frame just received is handled. Frames over the rate are dropped: the first drop of a window
        gets a RATE_LIMITED error frame, and `max_refused_frames` drops within one window close the connection
        (1008)."""
        if self._rate.take():
            return "taken"
        self._metrics.errors.labels(ErrorCode.RATE_LIMITED.value).inc()
        dropped = self._drops.count()
        if dropped >= self._settings.max_refused_frames:
            log.info("client kept sending over the frame rate; disconnected")
            await self.close(POLICY_VIOLATION, "too many frames")
            return "closed"
        if dropped == 1:
            await self.reject(
                ErrorCode.RATE_LIMITED,
                f"more than {self._settings.frames_per_second:g} frames a second: frames are dropped until you "
                "slow down; send the dropped ones again",
            )
        return "dropped"

    async def _take(self, text: str) -> None:
        try:
            frame = parse_frame(text, self._settings.max_frame_bytes, self._settings.max_tool_result_bytes)
        except FrameError as exc:
            await self.reject(exc.code, str(exc))
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
                    self.session_id,
                    frame,
                    self.tools,
                    tracing.trace_headers(span),
                    approval_source=source,
                    principal=self.principal.name,
                )
                self.follow_on(accepted.after_seq)
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

    def _saw(self, text: str) -> None:
        if self._turn_span is not None and ends_turn(text):
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


@dataclass(frozen=True, slots=True)
class Services:
    """What serving a client needs from the app."""

    hub: SessionHub
    agent: AgentClient
    authenticator: ClientAuthenticator
    settings: Settings


async def serve_client(websocket: WebSocket, services: Services, session_id: str, profile: ClientProfile) -> None:
    """Run one client WebSocket until it disconnects or is replaced.

    Before the handshake is answered: its size and Origin, the client's credential, its principal's connection
    count, and (with authentication on) that the session is the principal's. A refusal there is an HTTP answer
    with the error envelope (401, 403, 429, 431, or 404 INVALID_SESSION); after it, an error frame and a close."""
    hub, settings = services.hub, services.settings
    if (refusal := handshake_refusal(websocket.scope, settings)) is not None:
        await _deny(websocket, refusal)
        return
    try:
        principal = await services.authenticator.authenticate(websocket.headers, websocket.query_params)
    except AuthError as exc:
        await _deny(websocket, Refusal(401, ErrorCode.UNAUTHORIZED, str(exc)))
        return
    if principal.name is not None and hub.connections_of(principal.name) >= settings.max_connections_per_principal:
        limit = settings.max_connections_per_principal
        await _deny(websocket, Refusal(429, ErrorCode.RATE_LIMITED, f"this principal has {limit} connections open"))
        return
    valid_id = _SESSION_ID.fullmatch(session_id) is not None
    if valid_id and principal.name is not None:
        try:
            await services.agent.claim(session_id, principal.name)
        except InputRefused as exc:
            await _deny(websocket, Refusal(404, exc.code, exc.message))
            return
        except AgentUnavailable as exc:
            await websocket.accept(subprotocol=principal.subprotocol)
            await _refuse(websocket, exc.code, f"{exc.message}; connect again shortly", TRY_AGAIN_LATER)
            return
    await websocket.accept(subprotocol=principal.subprotocol)
    if not valid_id:
        await _refuse(websocket, ErrorCode.INVALID_SESSION, f"invalid session id; it must match {SESSION_ID_PATTERN}")
        return
    query = websocket.query_params
    try:
        capabilities = tools_from_query(query.get("tools"), profile.default_tools)
        last_seq = _last_seq(query.get("last_seq"))
    except (CapabilityError, ValueError) as exc:
        await _refuse(websocket, ErrorCode.INVALID_FORMAT, str(exc))
        return
    dialect = dialect_named(profile.dialect)
    connection = ClientConnection(
        websocket, session_id, dialect, capabilities.tools, hub, services.agent, principal, settings
    )
    hub.metrics.connections.labels(profile.dialect).inc()
    hub.metrics.live_connections.inc()
    with structlog.contextvars.bound_contextvars(session_id=session_id, principal=principal.label):
        log.info("client connected", dialect=profile.dialect, last_seq=last_seq)
        await hub.attach(session_id, connection)
        if last_seq is not None:
            hub.metrics.resumes.inc()
        connection.follow(last_seq if last_seq is not None else hub.delivered(session_id))
        try:
            await connection.receive()
        finally:
            hub.detach(session_id, connection)
            await connection.stop()
            hub.metrics.live_connections.dec()
            log.info("client disconnected")


def _last_seq(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > MAX_SEQ:
        raise ValueError(f"last_seq must be a whole number from 0 to {MAX_SEQ}, got {raw[:32]!r}")
    return int(raw)


async def _refuse(websocket: WebSocket, code: ErrorCode, text: str, close_code: int = POLICY_VIOLATION) -> None:
    frame = ErrorFrame.of(code, text).model_dump_json(exclude_none=True)
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
        await websocket.send_text(frame)
        await websocket.close(close_code, code.value)


async def _deny(websocket: WebSocket, refusal: Refusal) -> None:
    """Turn the handshake down with an HTTP answer carrying the error envelope; a server that cannot answer a
    handshake with a response gets an accepted socket, the error frame and a close instead."""
    log.info("connection refused", code=refusal.code.value, status=refusal.status)
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        kind = "authentication_error" if refusal.status in (401, 403) else "invalid_request_error"
        await websocket.send_denial_response(error_response(refusal.status, refusal.message, kind, refusal.code))
        return
    await websocket.accept()
    await _refuse(websocket, refusal.code, refusal.message)
