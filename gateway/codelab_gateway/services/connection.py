"""One client WebSocket: a receive loop feeding its session, and a sender task tailing the session's log.

The sender is the only task that writes to the socket; it renders log entries through the connection's dialect
and reports how far delivery got, so a replacing connection continues exactly there.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from codelab_common.protocol import IDE_TOOLS, SESSION_ID_PATTERN, ErrorCode, ErrorFrame
from codelab_gateway.services.capabilities import CapabilityError, tools_from_query
from codelab_gateway.services.dialects import Dialect, IdeDialect, StreamDialect, dialect_named
from codelab_gateway.services.inbound import FrameError, parse_frame
from codelab_gateway.services.metrics import GatewayMetrics
from codelab_gateway.services.outbound_log import Entry, EventLog, encode_frame
from codelab_gateway.services.session import Session
from codelab_gateway.services.session_hub import SessionHub

log = structlog.get_logger(__name__)

POLICY_VIOLATION = 1008
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
        self, websocket: WebSocket, dialect: Dialect, tools: list[str] | None, metrics: GatewayMetrics
    ) -> None:
        self.websocket = websocket
        self.dialect = dialect
        self.tools = tools
        self._metrics = metrics
        self.read_seq = 0
        """The last log entry the sender has consumed (sent, or held by the dialect)."""
        self._sender: asyncio.Task[None] | None = None
        self._progress = asyncio.Event()

    @property
    def sending(self) -> bool:
        return self._sender is not None and not self._sender.done()

    def start(self, source: EventLog, *, after: int, on_delivered: Callable[[int], None]) -> None:
        self.read_seq = after
        self._sender = asyncio.create_task(self._send_from(source, after, on_delivered))

    async def wait_progress(self) -> None:
        self._progress.clear()
        await self._progress.wait()

    async def _send_from(self, source: EventLog, cursor: int, on_delivered: Callable[[int], None]) -> None:
        try:
            while True:
                await source.wait_after(cursor)
                batch = source.after(cursor)
                if batch and batch[0].seq > cursor + 1:
                    log.warning("outbound frames dropped before delivery", missed=batch[0].seq - cursor - 1)
                for entry in batch:
                    for text in self.dialect.render(entry):
                        await self.websocket.send_text(text)
                        self._metrics.frame_sent(_sent_type(entry, text))
                    cursor = self.read_seq = entry.seq
                    if not self.dialect.holding:
                        on_delivered(cursor)
                self._progress.set()
        except (WebSocketDisconnect, OSError, RuntimeError):
            pass  # the socket is gone; the receive loop ends the connection
        except Exception:
            log.exception("sending to the client failed")
        finally:
            self._progress.set()

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender

    async def close(self, code: int, reason: str) -> None:
        await self.stop()
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
            await self.websocket.close(code, reason)


async def serve_client(
    websocket: WebSocket, hub: SessionHub, session_id: str, profile: ClientProfile, tools_query: str | None
) -> None:
    """Run one client WebSocket until it disconnects or is replaced."""
    await websocket.accept()
    if not _SESSION_ID.fullmatch(session_id):
        await _refuse(websocket, ErrorCode.INVALID_SESSION, f"invalid session id; it must match {SESSION_ID_PATTERN}")
        return
    try:
        capabilities = tools_from_query(tools_query, profile.default_tools)
    except CapabilityError as exc:
        await _refuse(websocket, ErrorCode.INVALID_FORMAT, str(exc))
        return
    session = hub.session(session_id)
    connection = ClientConnection(websocket, dialect_named(profile.dialect), capabilities.tools, hub.metrics)
    hub.metrics.connections.labels(profile.dialect).inc()
    hub.metrics.live_connections.inc()
    with structlog.contextvars.bound_contextvars(session_id=session_id):
        log.info("client connected", dialect=profile.dialect)
        await session.attach(connection)
        try:
            await _receive_frames(websocket, session, hub.settings.max_frame_bytes)
        finally:
            session.detach(connection)
            await connection.stop()
            hub.metrics.live_connections.dec()
            log.info("client disconnected")


async def _receive_frames(websocket: WebSocket, session: Session, max_bytes: int) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            session.reject(ErrorCode.INVALID_FORMAT, "binary frames are not supported; send JSON text frames")
            continue
        try:
            frame = parse_frame(text, max_bytes)
        except FrameError as exc:
            session.reject(ErrorCode.INVALID_FORMAT, str(exc))
            continue
        if frame is not None:
            session.receive(frame)


def _sent_type(entry: Entry, text: str) -> str:
    """The type of a frame rendered from `entry`: the entry's own when sent as logged, else the whole assistant
    message the IDE dialect joined from deltas."""
    return entry.type if text is entry.text else "assistant_message"


async def _refuse(websocket: WebSocket, code: ErrorCode, text: str) -> None:
    _, frame = encode_frame(ErrorFrame.of(code, text))
    with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):
        await websocket.send_text(frame)
        await websocket.close(POLICY_VIOLATION, code.value)
