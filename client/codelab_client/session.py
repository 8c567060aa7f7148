"""The client side of the gateway's WebSocket protocol, shared by `codelab chat`, `codelab run` and tests.

An `AgentSession` connects to `{url}/ws/{session_id}?tools=...` and runs turns. `run_turn` sends a `user_message`
and reads frames until the turn's final frame: the `assistant_message` with `is_final: true` whose `stop_reason`
says how the turn ended (`completed`, `cancelled`, `error`). Error frames before it are shown and kept in the
result, and the turn goes on. Only frames carrying the turn's own `message_id` make its answer, so a session joined
while frames of an earlier turn still arrive never shows them as the answer to a new question. Each `tool_call` is
run by the tool executor (after the approver, when the call requires approval), one call at a time beside the
reading: when the turn ends (cancelled, abandoned) or the gateway gives up on a call (TOOL_TIMEOUT), a tool still
running for it is stopped, a command with its whole process group.

Every frame of the session's event log carries `seq` (1, 2, ...). The session keeps the highest it has seen and
drops a frame it already holds; when the connection drops it reconnects with `?last_seq=N`, and the gateway sends
every frame after N exactly once, in order, then the live ones. Frames without `seq` are the gateway's own answers
to a frame this client sent: an error answering the `user_message` (BUSY, AGENT_DOWN, INVALID_FORMAT) means the
message was not taken and no turn started, and `run_turn` raises `MessageRefused`. A user message is never sent
twice: a second copy would be a second question.

Resuming replays what the gateway sent, not what this client sent: a `tool_result` written into a connection that
then broke may never have arrived, and its call would wait for the tool timeout. So after a reconnect the results
of the tool round in progress are sent again; the gateway takes a result it already has without a frame, and the
UNKNOWN_CALL_ID it answers for a call no longer waiting (timed out, cancelled) is dropped here for such a copy. A
result the gateway could not pass on (AGENT_DOWN, BUSY or INTERNAL naming its call) is sent again a few times.

The connection reads without a queue limit, so it keeps answering pings while no turn reads it (at a prompt).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import orjson
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from codelab_client.approvals import Approver, Decision
from codelab_client.events import SessionListener
from codelab_client.tools import ToolExecutor
from codelab_common.protocol import SESSION_ID_PATTERN, ErrorCode, PlanProgress, PlanUpdate, StopReason, ToolCall

FINAL_CLOSE_CODES = frozenset({1008, 4000, 4401})
"""Closes after which reconnecting is pointless: refused session or tools, replaced by another client, auth."""

RECONNECT_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0)
RESULT_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
"""When a tool_result is sent again after the gateway could not pass it on."""
RETRIED_RESULT_ERRORS = frozenset({ErrorCode.AGENT_DOWN, ErrorCode.BUSY, ErrorCode.INTERNAL})
REFUSALS_WITHOUT_ID = frozenset({ErrorCode.INVALID_FORMAT, ErrorCode.BUSY})
"""Errors without seq naming no message that, before the turn's ack, answer its user_message (a frame refused
before it could be read names nothing)."""
ABANDON_CANCEL_S = 1.0
"""How long a turn the caller stops waiting for (timeout, task cancelled) tries to send its cancel."""
MAX_FRAME_BYTES = 1_000_000
APPROVAL_ATTEMPTS = 5
"""Decisions sent for one call before the client gives up and rejects it (each refused one is asked again)."""
"""Keeps a tool_result under the gateway's default inbound frame limit (1 MiB)."""

_SESSION_ID = re.compile(SESSION_ID_PATTERN)


class SessionClosed(Exception):
    """The gateway cannot be reached, refused the session, or handed it to another client."""


class MessageRefused(Exception):
    """The gateway answered the user_message with an error of its own (no seq): the message was not taken and no
    turn started. BUSY: a turn is still running in the session; send again once it has ended (or cancel it)."""

    def __init__(self, frame: dict[str, Any]) -> None:
        self.frame = frame
        self.code = str(frame.get("code") or "")
        super().__init__(f"{self.code}: {frame.get('content') or frame.get('error') or ''}")


class TurnStatus(StrEnum):
    COMPLETED = "completed"
    """The final frame said `completed` (errors that did not end the turn may be in `errors`)."""
    CANCELLED = "cancelled"
    """The final frame said `cancelled`."""
    FAILED = "failed"
    """The final frame said `error`; the error frames before it say why."""
    TIMED_OUT = "timed_out"
    """The caller's time limit passed first (the turn was asked to stop)."""


_STATUS_OF_STOP = {
    StopReason.COMPLETED.value: TurnStatus.COMPLETED,
    StopReason.CANCELLED.value: TurnStatus.CANCELLED,
    StopReason.ERROR.value: TurnStatus.FAILED,
}


@dataclass
class TurnResult:
    status: TurnStatus
    message_id: str
    text: str = ""
    stop_reason: str | None = None
    """The final frame's `stop_reason`."""
    frames: list[dict[str, Any]] = field(default_factory=list)
    """Every frame of the turn, in order, and the gateway's errors answering what this client sent."""
    errors: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status is TurnStatus.COMPLETED and not self.errors


@dataclass(eq=False)
class _Turn:
    """What `run_turn` keeps about the turn in progress."""

    message_id: str
    result: TurnResult
    sent: bool = False
    """The user_message went out (a reconnect then resumes from the start of the log at least)."""
    acked: bool = False
    cancel_asked: bool = False
    calls: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    """tool_call frames waiting for the worker."""
    call_ids: set[str] = field(default_factory=set)
    stopped: set[str] = field(default_factory=set)
    """Calls the gateway stopped waiting for (TOOL_TIMEOUT): not started, or stopped where they run."""
    running: tuple[str, asyncio.Task[None]] | None = None
    results: dict[str, str] = field(default_factory=dict)
    """call_id → tool_result JSON of the tool round in progress; sent again after a reconnect."""
    sent_results: dict[str, str] = field(default_factory=dict)
    resent: set[str] = field(default_factory=set)
    retries: dict[str, int] = field(default_factory=dict)
    background: set[asyncio.Task[None]] = field(default_factory=set)
    decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """call_id → the `approval_recorded` frame: the decision the agent stored (seen live or replayed)."""
    deciding: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    """call_id → the answer awaited to an `approval` sent: its `approval_recorded`, or the error refusing it."""
    approvals: dict[str, str] = field(default_factory=dict)
    """call_id → the `approval` JSON awaiting its answer; sent again after a reconnect."""


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


TOKEN_HINT = (
    "; give the client its token with --token or CODELAB_TOKEN (codelab up keeps one in data/keys.env: "
    'eval "$(codelab env)" exports it)'
)


def _refusal(exc: InvalidStatus) -> str:
    """The gateway's own words for a refused handshake (its error envelope), else the HTTP status."""
    response = exc.response
    try:
        error = orjson.loads(response.body or b"")["error"]
        return f"{error['message']} ({error['code']})"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"


def frame_seq(frame: dict[str, Any]) -> int | None:
    seq = frame.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


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
        model: str | None = None,
        token: str | None = None,
    ) -> None:
        self.session_id = session_id or new_session_id()
        if not _SESSION_ID.fullmatch(self.session_id):
            raise ValueError(f"invalid session id {self.session_id!r}; it must match {SESSION_ID_PATTERN}")
        self.url = session_url(url, self.session_id, executor.supported_tools)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.executor = executor
        self.approver = approver
        self.listener = listener or SessionListener()
        self.model = model
        """The model the next turns ask for (None: the deployment's default)."""
        self.plan: PlanUpdate | None = None
        """The agent's plan, as the plan frames received so far make it."""
        self.last_seq: int | None = None
        """The highest seq received; a reconnect resumes after it."""
        self.duplicates = 0
        """Frames dropped because their seq was already held."""
        self.connections: list[str] = []
        """The URL of every connection opened, in order (the resume point is in its query)."""
        self._open_timeout = open_timeout
        self._reconnect_delays = reconnect_delays
        self._ws: ClientConnection | None = None
        self._turn: _Turn | None = None
        self._reconnecting = asyncio.Lock()
        self._gave_up: SessionClosed | None = None

    async def __aenter__(self) -> AgentSession:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def running_turn(self) -> str | None:
        """The message_id of the turn `run_turn` is running, if any."""
        return self._turn.message_id if self._turn is not None else None

    def _connect_url(self) -> str:
        # Holding no seq yet, the gateway starts the connection where the session's last input left off, or at the
        # running turn's first frame: exactly this turn's frames, without replaying the session's whole log.
        after = self.last_seq
        return self.url if after is None else f"{self.url}&last_seq={after}"

    async def connect(self) -> None:
        url = self._connect_url()
        try:
            self._ws = await connect(
                url,
                open_timeout=self._open_timeout,
                max_size=32 * 1024 * 1024,
                max_queue=None,
                close_timeout=2,
                proxy=None,
                additional_headers=self._headers,
            )
        except InvalidStatus as exc:
            hint = TOKEN_HINT if exc.response.status_code == 401 else ""
            raise SessionClosed(f"the gateway refused the connection: {_refusal(exc)}{hint}") from exc
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise SessionClosed(f"cannot connect to {self.url.split('?')[0]}: {exc or type(exc).__name__}") from exc
        self.connections.append(url)
        self._gave_up = None

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            await ws.close()

    def drop_connection(self) -> None:
        """Cut the connection as a network failure would; the next send or receive reconnects."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def cancel(self) -> None:
        """Ask the gateway to stop the running turn: `run_turn`'s, or the session's when none runs here. The turn
        ends with its final frame, `stop_reason: cancelled`."""
        frame: dict[str, Any] = {"type": "cancel"}
        turn = self._turn
        if turn is not None:
            frame["message_id"] = turn.message_id
            turn.cancel_asked = True
        await self._send(frame)

    # --- a turn ----------------------------------------------------------------------------------------------------

    async def run_turn(self, content: str, *, timeout: float | None = None) -> TurnResult:
        """Send one user message and handle frames until the turn's final frame (or until `timeout` seconds pass,
        when the turn is asked to stop). Raises MessageRefused when the gateway did not take the message."""
        if self._turn is not None:
            raise RuntimeError("a turn is already running in this session")
        message_id = f"msg_{uuid.uuid4().hex}"
        turn = _Turn(message_id, TurnResult(TurnStatus.FAILED, message_id=message_id))
        self._turn = turn
        reader: asyncio.Task[TurnStatus] | None = None
        worker: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(timeout):
                message = {"type": "user_message", "content": content, "role": "user", "message_id": message_id}
                if self.model is not None:
                    message["model"] = self.model
                await self._send(message)
                turn.sent = True
                reader = asyncio.create_task(self._read_turn(turn), name=f"codelab-read-{message_id}")
                worker = asyncio.create_task(self._work(turn), name=f"codelab-tools-{message_id}")
                await asyncio.wait((reader, worker), return_when=asyncio.FIRST_COMPLETED)
                if not reader.done():  # the worker ended: only by failing (the connection gone for good)
                    worker.result()
                    raise RuntimeError("the tool worker stopped")
                turn.result.status = reader.result()
        except TimeoutError:
            turn.result.status = TurnStatus.TIMED_OUT
            await self._abandon(turn)
        except asyncio.CancelledError:
            await self._abandon(turn)
            raise
        finally:
            await self._stop_tasks(turn, reader, worker)
            self._turn = None
        return turn.result

    async def _abandon(self, turn: _Turn) -> None:
        """The caller stops waiting: ask the gateway to stop the turn too, if the connection is up right now."""
        ws = self._ws
        if not turn.sent or ws is None:
            return
        cancel = orjson.dumps({"type": "cancel", "message_id": turn.message_id}).decode()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(ABANDON_CANCEL_S):
                await ws.send(cancel)

    async def _stop_tasks(self, turn: _Turn, *tasks: asyncio.Task[Any] | None) -> None:
        """Stop the turn's reader, worker, a tool still running (killing a command's process group) and resends."""
        stopping = [task for task in (*tasks, *turn.background) if task is not None and not task.done()]
        if turn.running is not None:
            stopping.append(turn.running[1])
        for task in stopping:
            task.cancel()
        for task in stopping:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _read_turn(self, turn: _Turn) -> TurnStatus:
        parts: list[str] = []
        try:
            while True:
                frame = await self._receive()
                if frame.get("type") == "error" and frame_seq(frame) is None:
                    self._gateway_answer(turn, frame)
                elif self._of_turn(turn, frame):
                    status = self._take(turn, frame, parts)
                    if status is not None:
                        return status
        finally:
            turn.result.text = "".join(parts)

    @staticmethod
    def _of_turn(turn: _Turn, frame: dict[str, Any]) -> bool:
        message_id = frame.get("message_id")
        if message_id is not None:
            return bool(message_id == turn.message_id)
        return turn.acked

    def _take(self, turn: _Turn, frame: dict[str, Any], parts: list[str]) -> TurnStatus | None:
        """Handle a frame of the turn; the turn's status once it is the final one."""
        result = turn.result
        result.frames.append(frame)
        self.listener.on_frame(frame)
        kind = frame.get("type")
        if kind == "assistant_message":
            turn.results.clear()  # the model speaks again: the round's results were all taken
            text = frame.get("content") or ""
            if text:
                parts.append(text)
                self.listener.on_delta(text)
            if frame.get("is_final", True):
                result.stop_reason = frame.get("stop_reason")
                self.listener.on_final(frame)
                if result.stop_reason in _STATUS_OF_STOP:
                    return _STATUS_OF_STOP[result.stop_reason]
                return TurnStatus.FAILED if result.errors else TurnStatus.COMPLETED
        elif kind == "tool_call":
            result.tool_calls.append(frame)
            call_id = frame.get("call_id")
            if isinstance(call_id, str):
                turn.call_ids.add(call_id)
            turn.calls.put_nowait(frame)
        elif kind == "error":
            result.errors.append(frame)
            self.listener.on_error(frame)
            call_id = frame.get("call_id")
            if frame.get("code") == ErrorCode.TOOL_TIMEOUT and isinstance(call_id, str):
                self._stop_call(turn, call_id)
            else:
                turn.results.clear()
        elif kind == "ack":
            turn.acked = True
            self.listener.on_ack(frame)
        elif kind in ("plan_update", "plan_progress"):
            self._take_plan(frame)
        elif kind == "approval_recorded":
            call_id = frame.get("call_id")
            if isinstance(call_id, str):
                turn.decisions[call_id] = frame
                self._decided(turn, call_id, frame)
        else:
            self.listener.on_unknown(frame)
        return None

    def _take_plan(self, frame: dict[str, Any]) -> None:
        try:
            if frame["type"] == "plan_update":
                self.plan = PlanUpdate.model_validate(frame)
            else:
                progress = PlanProgress.model_validate(frame)
                if self.plan is None or progress.plan_id != self.plan.plan_id:
                    return  # progress of a plan this client never saw whole (it resumed after its plan_update)
                for step in self.plan.steps:
                    if step.id == progress.step_id:
                        step.status, step.result = progress.status, progress.result
        except ValidationError:
            self.listener.on_unknown(frame)
            return
        self.listener.on_plan(self.plan, frame)

    def _gateway_answer(self, turn: _Turn, frame: dict[str, Any]) -> None:
        """An error without seq: the gateway's answer to a frame this client sent (or a notice of its own)."""
        code, call_id, message_id = frame.get("code"), frame.get("call_id"), frame.get("message_id")
        if isinstance(call_id, str) and call_id in turn.deciding:
            self._report(turn, frame)
            self._decided(turn, call_id, frame)  # the approval was refused (an edit that does not fit, say)
            return
        if call_id is not None:
            if call_id not in turn.call_ids:
                return  # answers a result of another turn
            again = call_id in turn.resent
            if code == ErrorCode.UNKNOWN_CALL_ID and again:
                return  # a copy sent again for a call that no longer waits: nothing was lost
            if not (again and code in RETRIED_RESULT_ERRORS):
                self._report(turn, frame)  # a copy refused for now is not news: it is sent again quietly
            if code in RETRIED_RESULT_ERRORS:
                self._retry_result(turn, call_id)
            return
        if message_id is not None and message_id != turn.message_id:
            return  # answers an earlier turn's frame
        if not turn.acked and (message_id == turn.message_id or code in REFUSALS_WITHOUT_ID):
            self._report(turn, frame)
            raise MessageRefused(frame)
        if message_id == turn.message_id:
            turn.cancel_asked = False  # it answers the cancel: the turn goes on
        self._report(turn, frame)

    def _report(self, turn: _Turn, frame: dict[str, Any]) -> None:
        turn.result.frames.append(frame)
        turn.result.errors.append(frame)
        self.listener.on_frame(frame)
        self.listener.on_error(frame)

    # --- tool calls ------------------------------------------------------------------------------------------------

    async def _work(self, turn: _Turn) -> None:
        """Run the turn's calls one at a time, in order (approvals ask one after another)."""
        while True:
            frame = await turn.calls.get()
            call_id = frame.get("call_id")
            if turn.cancel_asked or call_id in turn.stopped:
                continue
            task = asyncio.create_task(self._handle_tool_call(turn, frame))
            turn.running = (str(call_id), task)
            try:
                await asyncio.wait((task,))
            finally:
                turn.running = None
                task.cancel()  # a no-op unless this worker itself is being stopped
            error = None if task.cancelled() else task.exception()
            if error is not None:
                raise error

    def _stop_call(self, turn: _Turn, call_id: str) -> None:
        turn.stopped.add(call_id)
        if turn.running is not None and turn.running[0] == call_id:
            turn.running[1].cancel()

    async def _handle_tool_call(self, turn: _Turn, frame: dict[str, Any]) -> None:
        try:
            call = ToolCall.model_validate(frame)
        except ValidationError as exc:
            call_id = frame.get("call_id")
            if isinstance(call_id, str) and call_id:
                invalid = f"[invalid_tool_call] {exc.errors()[0]['msg']}"
                await self._send_result(turn, call_id, {"type": "tool_result", "call_id": call_id, "error": invalid})
            self.listener.on_unknown(frame)
            return
        self.listener.on_tool_call(call)
        arguments = call.arguments
        if call.requires_approval:
            recorded = await self._approval(turn, call)
            if recorded is None:
                return  # rejected: nothing runs, and the agent already told the model
            arguments = recorded["arguments"] if isinstance(recorded.get("arguments"), dict) else arguments
        outcome = await self.executor.execute(call.tool_name, arguments)
        result = outcome.result
        error: str | None = outcome.error
        reply: dict[str, Any] = {"type": "tool_result", "call_id": call.call_id, "tool_name": call.tool_name}
        reply["result" if error is None else "error"] = result if error is None else error
        if len(orjson.dumps(reply)) > MAX_FRAME_BYTES:
            result, error = None, "[result_too_large] the result is over 1 MB; ask for less (a line range, a subfolder)"
            reply = {"type": "tool_result", "call_id": call.call_id, "tool_name": call.tool_name, "error": error}
        self.listener.on_tool_result(call, result, error)
        await self._send_result(turn, call.call_id, reply)

    async def _approval(self, turn: _Turn, call: ToolCall) -> dict[str, Any] | None:
        """Ask the user (unless the decision is already in the log), tell the agent, and wait for it to record the
        decision: the `approval_recorded` frame to run the call by, or None when it was rejected. A decision that
        arrives while the user is still being asked (replayed after a reconnect) ends the question."""
        data: str | None = None
        for attempt in range(APPROVAL_ATTEMPTS):
            waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            turn.deciding[call.call_id] = waiter
            try:
                if call.call_id in turn.decisions:
                    waiter.set_result(turn.decisions[call.call_id])
                elif data is None:
                    asking: asyncio.Future[Decision] = asyncio.ensure_future(self.approver(call))
                    try:
                        await asyncio.wait((asking, waiter), return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        asking.cancel()
                    if not waiter.done():
                        data = orjson.dumps(asking.result().frame(call.call_id)).decode()
                if not waiter.done() and data is not None:
                    turn.approvals[call.call_id] = data
                    await self._send_text(data)
                recorded = await waiter
            finally:
                turn.deciding.pop(call.call_id, None)
                turn.approvals.pop(call.call_id, None)
            if recorded.get("type") == "approval_recorded":
                if recorded.get("decision") == "reject":
                    self.listener.on_tool_result(call, None, "rejected by the user")
                    return None
                return recorded
            if recorded.get("code") in RETRIED_RESULT_ERRORS:
                await asyncio.sleep(RESULT_RETRY_DELAYS_S[min(attempt, len(RESULT_RETRY_DELAYS_S) - 1)])
                continue  # the same decision again: the agent could not take it just now
            data = None  # refused (the listener showed why): ask the user again
        await self._send(Decision(False, "the approval could not be recorded").frame(call.call_id))
        return None

    @staticmethod
    def _decided(turn: _Turn, call_id: str, answer: dict[str, Any]) -> None:
        waiter = turn.deciding.get(call_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(answer)

    async def _send_result(self, turn: _Turn, call_id: str, reply: dict[str, Any]) -> None:
        data = orjson.dumps(reply).decode()
        turn.results[call_id] = turn.sent_results[call_id] = data
        await self._send_text(data)

    def _retry_result(self, turn: _Turn, call_id: str) -> None:
        attempt = turn.retries.get(call_id, 0)
        data = turn.sent_results.get(call_id)
        if data is None or attempt >= len(RESULT_RETRY_DELAYS_S):
            return
        turn.retries[call_id] = attempt + 1

        async def again() -> None:
            await asyncio.sleep(RESULT_RETRY_DELAYS_S[attempt])
            turn.resent.add(call_id)
            with contextlib.suppress(SessionClosed):
                await self._send_text(data)

        task = asyncio.create_task(again())
        turn.background.add(task)
        task.add_done_callback(turn.background.discard)

    # --- the connection --------------------------------------------------------------------------------------------

    async def _send(self, frame: dict[str, Any]) -> None:
        await self._send_text(orjson.dumps(frame).decode())

    async def _send_text(self, data: str) -> None:
        while True:
            ws = await self._live()
            try:
                await ws.send(data)
                return
            except ConnectionClosed as exc:
                await self._reconnect(ws, exc)

    async def _receive(self) -> dict[str, Any]:
        """The next frame not held yet (a frame with a seq at or below `last_seq` is dropped)."""
        while True:
            ws = await self._live()
            try:
                raw = await ws.recv()
            except ConnectionClosed as exc:
                await self._reconnect(ws, exc)
                continue
            try:
                frame = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if not isinstance(frame, dict):
                continue
            seq = frame_seq(frame)
            if seq is not None:
                if self.last_seq is not None and seq <= self.last_seq:
                    self.duplicates += 1
                    continue
                self.last_seq = seq
            return frame

    async def _live(self) -> ClientConnection:
        if self._ws is None:
            async with self._reconnecting:
                if self._ws is None:
                    await self.connect()
        assert self._ws is not None
        return self._ws

    async def _reconnect(self, dead: ClientConnection, closed: ConnectionClosed) -> None:
        async with self._reconnecting:
            if self._ws is not None and self._ws is not dead:
                return  # another task reconnected meanwhile
            if self._gave_up is not None:
                raise self._gave_up
            self._ws = None
            code = closed.rcvd.code if closed.rcvd else None
            reason = closed.rcvd.reason if closed.rcvd else ""
            if code in FINAL_CLOSE_CODES:
                message = f"the gateway closed the session ({code} {reason})".replace(" )", ")")
                self._gave_up = SessionClosed(message)
                raise self._gave_up from closed
            why = f"connection lost ({code} {reason})".strip() if code else "connection lost"
            for attempt, delay in enumerate(self._reconnect_delays, start=1):
                self.listener.on_reconnecting(attempt, why)
                await asyncio.sleep(delay)
                try:
                    await self.connect()
                    await self._resend_round()
                except (SessionClosed, ConnectionClosed):
                    self._ws = None
                    continue
                self.listener.on_reconnected()
                return
            self._gave_up = SessionClosed(f"lost the connection to the gateway and could not reconnect ({why})")
            raise self._gave_up from closed

    async def _resend_round(self) -> None:
        """Send again the results of the tool round in progress: one may have been lost with the connection."""
        turn = self._turn
        if turn is None or self._ws is None:
            return
        for call_id, data in list(turn.results.items()):
            turn.resent.add(call_id)
            await self._ws.send(data)
        for data in list(turn.approvals.values()):
            await self._ws.send(data)  # answered as a duplicate when it arrived before
