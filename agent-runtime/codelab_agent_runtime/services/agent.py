"""One step of a session: a user message that starts a turn, or a tool result that continues it.

Steps of one session run one at a time (a per-session lock; one process owns a session). A user message that
finds the session busy is refused with BUSY at once; a tool result waits a moment first, because the client can
answer a call before the step that made it has closed its stream.

Each step is the server span of its request (`codelab_common.tracing`). A tool call's round trip spans two steps:
the call keeps the `traceparent` of the step that sent it, and the step that takes its result records the round
trip as a span under that one, linked from its own.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator

import orjson
import structlog

from codelab_agent_runtime.core.config import Settings
from codelab_agent_runtime.models.api import PendingCallView, SessionView
from codelab_agent_runtime.models.session import PendingCall, SessionState
from codelab_agent_runtime.services import sse_frames, tool_messages
from codelab_agent_runtime.services.llm_client import LLMClient
from codelab_agent_runtime.services.metrics import AgentMetrics, ToolOutcome, TurnOutcome
from codelab_agent_runtime.services.model_loop import ModelLoop, new_id
from codelab_agent_runtime.services.session_store import SessionStore
from codelab_agent_runtime.services.tool_catalog import ToolCatalog
from codelab_common import tracing
from codelab_common.protocol import AgentRequest, ErrorCode, StepStatus, ToolResult, UserMessage

log = structlog.get_logger(__name__)


class AgentService:
    def __init__(self, settings: Settings, store: SessionStore, llm: LLMClient, metrics: AgentMetrics) -> None:
        self._settings = settings
        self._store = store
        self._metrics = metrics
        self._catalog = ToolCatalog(settings.approval_required, settings.model_tools)
        self._loop = ModelLoop(settings, store, llm)
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    async def run_step(self, request: AgentRequest) -> AsyncIterator[bytes]:
        """The step's SSE events, ending with `done`."""
        lock = self._locks.get(request.session_id)
        if lock is None:
            lock = self._locks[request.session_id] = asyncio.Lock()
        wait_s = self._settings.busy_wait_s if isinstance(request.message, ToolResult) else 0.0
        if not await _acquire(lock, wait_s):
            yield sse_frames.error_event(ErrorCode.BUSY, "The agent is still working on this session; try again.")
            yield sse_frames.done_event(StepStatus.FAILED)
            return
        state: SessionState | None = None
        try:
            state = await self._store.load(request.session_id) or SessionState(session_id=request.session_id)
            if isinstance(request.message, UserMessage):
                steps = self._on_user_message(state, request.message, request.tools)
            else:
                steps = self._on_tool_result(state, request.message)
            end = sse_frames.StepEnd()
            async for event in steps:
                end.see(event)
                yield event
            self._step_ended(state, end.status, end.error_code)
        except Exception:
            # The 200 and maybe some frames are already sent: the caller learns of the failure in-band. The session
            # keeps its last saved state, which is always one the client has seen.
            log.exception("step_failed", session_id=request.session_id)
            yield sse_frames.error_event(ErrorCode.INTERNAL, "agent-runtime failed while running this step.")
            yield sse_frames.done_event(StepStatus.FAILED)
            self._step_ended(state, StepStatus.FAILED, ErrorCode.INTERNAL)
        finally:
            lock.release()

    def _step_ended(self, state: SessionState | None, status: StepStatus | None, error: ErrorCode | None) -> None:
        tracing.annotate({"codelab.step.status": status.value if status else "unknown"})
        outcome = TurnOutcome.of(status, error)
        if outcome is not None:
            self._metrics.turn_ended(outcome, state.step_count if state else 0)

    async def describe(self, session_id: str) -> SessionView | None:
        state = await self._store.load(session_id)
        if state is None:
            return None
        lock = self._locks.get(session_id)
        return SessionView(
            session_id=state.session_id,
            status="running" if lock is not None and lock.locked() else state.status.value,
            messages=state.messages,
            pending_calls=[
                PendingCallView(
                    call_id=call.call_id,
                    tool_name=call.wire_name,
                    arguments=call.arguments,
                    since=call.since,
                    has_result=call.result is not None,
                )
                for call in state.pending
            ],
            turn_message_id=state.turn_message_id,
            step_count=state.step_count,
            created_at=state.created_at,
            updated_at=state.updated_at,
        )

    async def _on_user_message(
        self, state: SessionState, message: UserMessage, tools: list[str] | None
    ) -> AsyncIterator[bytes]:
        awaiting = state.awaiting()
        if awaiting:
            timeout_s = self._settings.pending_tool_timeout_s
            if time.time() - min(call.since for call in awaiting) < timeout_s:
                ids = ", ".join(call.call_id for call in awaiting)
                yield sse_frames.error_event(
                    ErrorCode.BUSY,
                    f"The agent is waiting for the results of tool calls {ids}; send them first.",
                    message_id=message.message_id,
                )
                yield sse_frames.done_event(StepStatus.FAILED, [call.call_id for call in awaiting])
                return
            log.warning("stale_tool_calls_expired", session_id=state.session_id, call_ids=[c.call_id for c in awaiting])
            for call in awaiting:
                call.result = tool_messages.timeout_content(timeout_s)
                self._metrics.tool_answered(call.wire_name, ToolOutcome.TIMEOUT, seconds=None, needed_approval=False)
            state.close_tool_round()
        state.start_turn(message.message_id or new_id("msg"), message.content, tools)
        await self._store.save(state)
        async for event in self._loop.start(state, self._catalog.select(tools), message.content):
            yield event

    async def _on_tool_result(self, state: SessionState, result: ToolResult) -> AsyncIterator[bytes]:
        call = state.find_awaiting(result.call_id)
        if call is None:
            yield sse_frames.error_event(
                ErrorCode.UNKNOWN_CALL_ID,
                f"No tool call {result.call_id} is waiting for a result in this session.",
                call_id=result.call_id,
            )
            yield sse_frames.done_event(StepStatus.FAILED, [c.call_id for c in state.awaiting()])
            return
        self._result_arrived(state, call, result)
        if call.purpose == "context":
            call.result = orjson.dumps({"result": result.result, "error": result.error}).decode()
        else:
            limit = self._settings.tool_result_max_chars
            call.result = tool_messages.result_content(result.result, result.error, limit)
        awaiting = state.awaiting()
        if awaiting:
            await self._store.save(state)
            yield sse_frames.done_event(StepStatus.AWAITING_TOOL_RESULTS, [c.call_id for c in awaiting])
            return
        async for event in self._loop.resume(state, self._catalog.select(state.turn_tools)):
            yield event

    def _result_arrived(self, state: SessionState, call: PendingCall, result: ToolResult) -> None:
        """Count the call's outcome and round trip, and trace the round trip from the step that sent the call."""
        outcome = ToolOutcome.of(result.error)
        toolset = self._catalog.select(state.turn_tools)
        spec = toolset.lookup(call.name)
        needed_approval = call.purpose == "model" and spec is not None and toolset.requires_approval(spec)
        self._metrics.tool_answered(
            call.wire_name, outcome, seconds=time.time() - call.since, needed_approval=needed_approval
        )
        span = tracing.start_span(
            f"tool {call.wire_name}",
            parent=tracing.context_of(call.traceparent),
            start_time_ns=int(call.since * 1e9),
            attributes={"codelab.tool.name": call.wire_name, "codelab.tool.call_id": call.call_id},
        )
        tracing.link_from_current(span)
        failed = outcome in (ToolOutcome.ERROR, ToolOutcome.TIMEOUT)
        tracing.finish(span, {"codelab.tool.outcome": outcome.value}, error=outcome.value if failed else None)


async def _acquire(lock: asyncio.Lock, wait_s: float) -> bool:
    if lock.locked() and wait_s <= 0:
        return False
    try:
        async with asyncio.timeout(max(wait_s, 0.1)):
            return await lock.acquire()
    except TimeoutError:
        return False
