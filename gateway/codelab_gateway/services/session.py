"""A client session: turn state, tool-call timers, the outbound log and the one live connection.

A session outlives its WebSocket. Frames from the client are answered locally when the gateway already knows the
answer (BUSY, a late tool_result) and otherwise queued as steps for agent-runtime, sent one at a time by the
session's pump task. Everything meant for the client is appended to the session's outbound log, and whichever
connection is live tails that log; with none live, the log keeps the frames for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from opentelemetry.trace import Span, SpanKind
from pydantic import BaseModel

from codelab_common import tracing
from codelab_common.protocol import (
    DONE_EVENT,
    MESSAGE_EVENT,
    Ack,
    AgentRequest,
    ErrorCode,
    ErrorFrame,
    StepDone,
    StepStatus,
    ToolResult,
    UserMessage,
)
from codelab_common.protocol.agent_api import tool_timeout_error
from codelab_gateway.core.config import Settings
from codelab_gateway.services.agent_client import AgentClient, AgentStepError
from codelab_gateway.services.metrics import GatewayMetrics
from codelab_gateway.services.outbound_log import OutboundLog, encode_frame

if TYPE_CHECKING:
    from codelab_gateway.services.connection import ClientConnection

log = structlog.get_logger(__name__)

REPLACED_CLOSE_CODE = 4000
TIMED_OUT_CALLS_KEPT = 256


class TurnState(StrEnum):
    STREAMING = "streaming"
    AWAITING_TOOL_RESULTS = "awaiting_tool_results"


@dataclass(slots=True)
class Turn:
    message_id: str
    state: TurnState = TurnState.STREAMING
    span: Span | None = None
    """The root of the turn's trace (None when the gateway does not trace); every step of the turn is its child."""


@dataclass(slots=True)
class PendingCall:
    tool_name: str | None
    timer: asyncio.TimerHandle


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def _seconds(value: float) -> str:
    return f"{value:g}"


class Session:
    def __init__(self, session_id: str, *, agent: AgentClient, settings: Settings, metrics: GatewayMetrics) -> None:
        self.id = session_id
        self.tools: list[str] | None = None
        self.log = OutboundLog(settings.outbound_buffer_frames)
        self.idle_since = time.monotonic()
        self._agent = agent
        self._tool_timeout_s = settings.tool_timeout_s
        self._high_water = settings.outbound_buffer_frames // 2
        self._metrics = metrics
        self._connection: ClientConnection | None = None
        self._had_client = False
        self._delivered = 0
        self._turn: Turn | None = None
        self._calls: dict[str, PendingCall] = {}
        self._timed_out: dict[str, None] = {}
        self._inbox: deque[UserMessage | ToolResult] = deque()
        self._pump: asyncio.Task[None] | None = None

    # --- connections -------------------------------------------------------------------------------------------

    @property
    def connection(self) -> ClientConnection | None:
        return self._connection

    @property
    def delivered_seq(self) -> int:
        """The last seq whose frames reached a client; a new connection reads on after it."""
        return self._delivered

    async def attach(self, connection: ClientConnection) -> None:
        """Make `connection` the live one, closing a previous one with 4000 "replaced"."""
        previous, self._connection = self._connection, connection
        self.tools = connection.tools
        if previous is not None:
            log.info("connection replaced", session_id=self.id)
            await previous.close(REPLACED_CLOSE_CODE, "replaced")
        self._count_return()
        connection.start(self.log, after=self._delivered, on_delivered=self._mark_delivered)

    def _count_return(self) -> None:
        if self._had_client:
            self._metrics.reconnects.inc()
        self._had_client = True
        waiting = len(self.log.after(self._delivered))
        if waiting:
            self._metrics.replays.inc()
            self._metrics.replayed_frames.inc(waiting)

    def detach(self, connection: ClientConnection) -> None:
        if self._connection is connection:
            self._connection = None
            self.idle_since = time.monotonic()

    def _mark_delivered(self, seq: int) -> None:
        self._delivered = max(self._delivered, seq)

    # --- inbound -------------------------------------------------------------------------------------------------

    def receive(self, frame: UserMessage | ToolResult) -> None:
        self._metrics.frames_in.labels(frame.type).inc()
        if isinstance(frame, UserMessage):
            self._start_turn(frame)
        else:
            self._take_tool_result(frame)

    def _start_turn(self, message: UserMessage) -> None:
        if self._turn is not None:
            waiting = (
                f"waiting for tool results ({', '.join(self._calls)})"
                if self._turn.state is TurnState.AWAITING_TOOL_RESULTS and self._calls
                else "still running"
            )
            self.reject(
                ErrorCode.BUSY,
                f"the turn of message {self._turn.message_id} is {waiting}; send the next message when it ends",
                message_id=message.message_id,
            )
            return
        message_id = message.message_id or new_message_id()
        span = tracing.start_span(
            "turn",
            kind=SpanKind.SERVER,
            parent=tracing.new_trace(),
            attributes={"codelab.session_id": self.id, "codelab.message_id": message_id},
        )
        self._turn = Turn(message_id, span=span)
        self.emit(Ack(message_id=message_id))
        self._enqueue(message.model_copy(update={"message_id": message_id}))

    def _take_tool_result(self, result: ToolResult) -> None:
        if result.call_id in self._timed_out:
            self.reject(
                ErrorCode.UNKNOWN_CALL_ID,
                f"tool call {result.call_id} already timed out after {_seconds(self._tool_timeout_s)} s "
                "and the model was told so; this result is dropped",
                call_id=result.call_id,
                message_id=self._turn.message_id if self._turn else None,
            )
            return
        call = self._calls.pop(result.call_id, None)
        if call is not None:
            call.timer.cancel()
        self._enqueue(result)

    # --- outbound ------------------------------------------------------------------------------------------------

    def emit(self, frame: BaseModel) -> None:
        """Append a frame the gateway itself writes (ACK, error) to the outbound log."""
        data, text = encode_frame(frame)
        self.log.append(data["type"], text, data)

    def reject(self, code: ErrorCode, text: str, **extra: Any) -> None:
        self._metrics.errors.labels(code.value).inc()
        self.emit(ErrorFrame.of(code, text, **extra))

    async def _relay(self, data: str) -> None:
        """Append one of agent-runtime's frames as received; its parsed form only feeds bookkeeping and dialects."""
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            log.warning("agent-runtime sent a frame that is not JSON", session_id=self.id)
            return
        kind = frame.get("type") if isinstance(frame, dict) else None
        if not isinstance(kind, str):
            log.warning("agent-runtime sent a frame without a type", session_id=self.id)
            return
        if kind == "tool_call" and isinstance(frame.get("call_id"), str):
            self._watch_call(frame["call_id"], frame.get("tool_name"))
        self.log.append(kind, data, frame)
        await self._backpressure()

    async def _backpressure(self) -> None:
        """Stop reading agent-runtime while the live client is more than half a log behind."""
        connection = self._connection
        if connection is None:
            return
        while self._lags(connection):
            await connection.wait_progress()

    def _lags(self, connection: ClientConnection) -> bool:
        return (
            self._connection is connection
            and connection.sending
            and self.log.last_seq - connection.read_seq > self._high_water
        )

    # --- steps ---------------------------------------------------------------------------------------------------

    def _enqueue(self, frame: UserMessage | ToolResult) -> None:
        self._inbox.append(frame)
        if self._pump is None:
            self._pump = asyncio.create_task(self._run_steps(), name=f"gateway-session-{self.id}")

    async def _run_steps(self) -> None:
        try:
            while self._inbox:
                frame = self._inbox.popleft()
                try:
                    await self._step(frame)
                except Exception:
                    log.exception("step failed inside the gateway", session_id=self.id)
                    self._fail_step(frame, ErrorCode.INTERNAL, "the gateway failed to relay this step")
        finally:
            self._pump = None

    async def _step(self, frame: UserMessage | ToolResult) -> None:
        request = AgentRequest(session_id=self.id, message=frame, tools=self.tools)
        if self._turn is not None:
            self._turn.state = TurnState.STREAMING
        span = tracing.start_span(
            f"step {frame.type}",
            kind=SpanKind.CLIENT,
            parent=self._turn.span if self._turn is not None else None,
            attributes={"codelab.session_id": self.id},
        )
        try:
            with tracing.ending(span, current=True):
                done = await self._relay_step(request, tracing.trace_headers(span))
                tracing.note(span, {"codelab.step.status": done.status.value})
        except AgentStepError as exc:
            self._fail_step(frame, exc.code, exc.message)
            return
        self._metrics.steps.labels(done.status.value).inc()
        if done.status is StepStatus.AWAITING_TOOL_RESULTS or done.pending_call_ids:
            # A failed step that still lists pending calls (BUSY, an unknown call_id) leaves the turn waiting.
            self._await_tool_results(done.pending_call_ids)
        else:
            self._end_turn(done.status.value)

    async def _relay_step(self, request: AgentRequest, headers: dict[str, str]) -> StepDone:
        """Relay the step's frames to the client's log; its `done`, or AgentStepError when it never came."""
        done: StepDone | None = None
        async for event in self._agent.stream_step(request.model_dump_json(exclude_none=True).encode(), headers):
            if event.event == MESSAGE_EVENT:
                await self._relay(event.data)
            elif event.event == DONE_EVENT:
                done = StepDone.model_validate_json(event.data)
        if done is None:
            raise AgentStepError(ErrorCode.AGENT_DOWN, "agent-runtime ended the stream before the step finished")
        return done

    def _await_tool_results(self, pending_call_ids: list[str]) -> None:
        if self._turn is not None:
            self._turn.state = TurnState.AWAITING_TOOL_RESULTS
        queued = {frame.call_id for frame in self._inbox if isinstance(frame, ToolResult)}
        for call_id in pending_call_ids:
            if call_id not in self._calls and call_id not in queued:
                self._watch_call(call_id, None)

    def _fail_step(self, frame: UserMessage | ToolResult, code: ErrorCode, text: str) -> None:
        self._metrics.steps.labels("unreachable" if code is ErrorCode.AGENT_DOWN else "error").inc()
        call_id = frame.call_id if isinstance(frame, ToolResult) else None
        message_id = self._turn.message_id if self._turn else getattr(frame, "message_id", None)
        self.reject(code, text, message_id=message_id, call_id=call_id)
        self._end_turn(code.value)

    def _end_turn(self, outcome: str) -> None:
        if self._turn is not None:
            failed = outcome != StepStatus.COMPLETED.value
            tracing.finish(self._turn.span, {"codelab.turn.outcome": outcome}, error=outcome if failed else None)
        self._turn = None
        for call in self._calls.values():
            call.timer.cancel()
        self._calls.clear()
        self.idle_since = time.monotonic()

    # --- tool timers ---------------------------------------------------------------------------------------------

    def _watch_call(self, call_id: str, tool_name: str | None) -> None:
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self._tool_timeout_s, self._tool_timed_out, call_id)
        previous = self._calls.pop(call_id, None)
        if previous is not None:
            previous.timer.cancel()
        self._calls[call_id] = PendingCall(tool_name, timer)

    def _tool_timed_out(self, call_id: str) -> None:
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        self._timed_out[call_id] = None
        if len(self._timed_out) > TIMED_OUT_CALLS_KEPT:
            del self._timed_out[next(iter(self._timed_out))]
        seconds = _seconds(self._tool_timeout_s)
        self.reject(
            ErrorCode.TOOL_TIMEOUT,
            f"tool {call.tool_name or 'call'} ({call_id}) got no result within {seconds} s; the model was told it "
            "timed out",
            call_id=call_id,
            message_id=self._turn.message_id if self._turn else None,
        )
        self._enqueue(ToolResult(call_id=call_id, tool_name=call.tool_name, error=tool_timeout_error(seconds)))

    # --- lifecycle -----------------------------------------------------------------------------------------------

    @property
    def turn(self) -> Turn | None:
        return self._turn

    @property
    def pending_call_ids(self) -> list[str]:
        return list(self._calls)

    @property
    def idle(self) -> bool:
        """No client, no turn, no queued step: the session can be dropped once it has been idle long enough."""
        return self._connection is None and self._turn is None and self._pump is None and not self._calls

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        self._end_turn("gateway_closed")
        if self._connection is not None:
            await self._connection.close(1001, "gateway shutting down")
            self._connection = None
