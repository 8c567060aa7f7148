"""Sessions and their turns: every input a client sends, and the steps it starts, decided here and only here.

An input (a user message, a tool result, an approval decision, a cancel) takes the session's lease, changes the
session and answers at once; when there is model work to do it starts a step as a task of its own, which keeps the
lease until the step has written its last frame. A step ends when the turn ends (its final frame) or when it waits
for tool results; then the lease is let go in the same write, so the next input, on this instance or another, finds
the session free and as the client saw it.

Each instance also sweeps for two kinds of sessions: tool calls unanswered past `tool_timeout_s` (or undecided past
`approval_timeout_s`; the model is told, the turn goes on), and sessions whose lease expired while a step ran (its
instance died or hung; judged on this instance's own clock, `expiry.py`): their turn is closed with AGENT_DOWN, what
the user was shown kept in the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
import structlog

from codelab_agent_runtime.core.config import Settings
from codelab_agent_runtime.core.metrics import AgentMetrics, ToolOutcome, TurnOutcome
from codelab_agent_runtime.llm.client import LLMClient
from codelab_agent_runtime.llm.models import ModelWindows
from codelab_agent_runtime.models.api import ApprovalsView, PendingCallView, SessionView
from codelab_agent_runtime.models.session import PendingCall, SessionState
from codelab_agent_runtime.store.sessions import Lease, LeaseLost, SqlSessionStore, StoredSession
from codelab_agent_runtime.tools import messages as tool_messages
from codelab_agent_runtime.tools.catalog import ToolCatalog
from codelab_agent_runtime.turns import frames
from codelab_agent_runtime.turns.context_window import ContextWindow
from codelab_agent_runtime.turns.expiry import ExpiryWatch, grace, renewal_interval
from codelab_agent_runtime.turns.feed import Feeds
from codelab_agent_runtime.turns.frames import Frame, StepEnd
from codelab_agent_runtime.turns.model_loop import REVIEW_TOOL, ModelLoop, new_id
from codelab_agent_runtime.turns.writer import EventWriter
from codelab_common import tracing
from codelab_common.patches import patch_problem
from codelab_common.protocol import (
    Ack,
    AgentRequest,
    Approval,
    ApprovalDecision,
    ApprovalRecorded,
    ApprovalRule,
    ApprovalSource,
    Cancel,
    ErrorCode,
    InputAccepted,
    RuleAction,
    StepDone,
    StepStatus,
    StopReason,
    ToolResult,
    UserMessage,
    frame_type,
    resolve,
)
from codelab_common.protocol.agent_api import tool_timeout_error
from codelab_common.protocol.approvals import decide

log = structlog.get_logger(__name__)

CANCELLED_RESULT = "the user cancelled the turn before this call ran"
CANCELLED_ANSWER = "(cancelled by the user)"
ORPHANED_ANSWER = "(the answer was cut: agent-runtime stopped)"


class InputRefused(Exception):
    """The input was not taken; `code` is the client's error code."""

    def __init__(self, code: ErrorCode, message: str, *, call_id: str | None = None, pending: list[str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.call_id = call_id
        self.pending = pending or []


@dataclass(slots=True)
class StepOutcome:
    done: StepDone
    last_seq: int


@dataclass(slots=True)
class Submission:
    accepted: InputAccepted
    step: asyncio.Future[StepOutcome] | None = None
    """The step the input started, resolved once its last frame is written (None: no step started)."""
    pending: list[str] = field(default_factory=list)
    written_seq: int | None = None
    """When no step started: the seq of the last frame the input itself wrote (an approval's record), if any."""


class _StopReason(StrEnum):
    USER = "user"
    LEASE_LOST = "lease_lost"


@dataclass(slots=True)
class _Step:
    message_id: str
    task: asyncio.Task[None] | None = None
    keeper: asyncio.Task[None] | None = None
    writer: EventWriter | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the step is over: its lease keeper stops at its next wake (never cancelled mid-write)."""
    outcome: asyncio.Future[StepOutcome] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    stopped: _StopReason | None = None

    def stop(self, why: _StopReason) -> None:
        if self.task is not None and not self.task.done() and self.stopped is None:
            self.stopped = why
            self.task.cancel()


class Turns:
    def __init__(
        self,
        settings: Settings,
        store: SqlSessionStore,
        feeds: Feeds,
        llm: LLMClient,
        metrics: AgentMetrics,
        windows: ModelWindows,
    ) -> None:
        self._settings = settings
        self._store = store
        self._feeds = feeds
        self._metrics = metrics
        self._catalog = ToolCatalog(settings.model_tools)
        self._loop = ModelLoop(settings, llm, ContextWindow(settings, llm, windows))
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._steps: dict[str, _Step] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._expiry = ExpiryWatch(grace(settings.lease_ttl_s))

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="agent-runtime-sweeper")

    async def close(self) -> None:
        """Stop sweeping and stop the steps running here without writing; their leases expire and the turns are
        closed by whichever instance sweeps first (this one, restarted, or another)."""
        tasks = [step.task for step in self._steps.values() if step.task is not None]
        if self._sweeper is not None:
            tasks.append(self._sweeper)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # --- inputs ----------------------------------------------------------------------------------------------------

    async def submit(self, request: AgentRequest) -> Submission:
        """Take one input; raises InputRefused when the session cannot take it now."""
        message, session_id = request.message, request.session_id
        if isinstance(message, Cancel):
            return await self._cancel(session_id, message)
        waits = isinstance(message, ToolResult | Approval)
        lease = await self._take(session_id, self._settings.busy_wait_s if waits else 0.0)
        if lease is None:
            stored = await self._store.load(session_id)
            if (
                isinstance(message, ToolResult | Approval)
                and stored is not None
                and (message.call_id in stored.state.answered or _decided(stored.state, message))
            ):
                return Submission(InputAccepted(status="duplicate", after_seq=stored.last_seq))
            raise InputRefused(ErrorCode.BUSY, "The agent is still working on this session; wait for its answer.")
        started = False
        try:
            stored = await self._stored(lease)
            if isinstance(message, UserMessage):
                submission = await self._start_turn(lease, stored, message, request.tools)
            elif isinstance(message, Approval):
                submission = await self._take_approval(lease, stored, message, request.approval_source)
            else:
                submission = await self._take_result(lease, stored, message)
            started = submission.step is not None
            return submission
        finally:
            if not started:
                await self._let_go(lease)

    async def _start_turn(
        self, lease: Lease, stored: StoredSession, message: UserMessage, tools: list[str] | None
    ) -> Submission:
        state = stored.state
        if state.running:
            stored = await self._close_orphaned(lease, stored)
            state = stored.state
        awaiting = state.awaiting()
        if awaiting:
            ids = [call.call_id for call in awaiting]
            raise InputRefused(
                ErrorCode.BUSY,
                f"The agent is waiting for the results of tool calls {', '.join(ids)}; send them first, or cancel "
                "the turn.",
                pending=ids,
            )
        message_id = message.message_id or new_id("msg")
        writer = EventWriter(self._store, self._feeds, lease, stored.last_seq)
        state.start_turn(message_id, message.content, tools, message.model)
        state.running = True
        state.turn_start_seq = writer.last_seq + 1
        writer.append(frames.of_model(Ack(message_id=message_id)))
        await writer.commit(state)
        steps = self._loop.start(state, self._catalog.select(tools), message.content)
        return self._spawn(writer, state, steps, stored.last_seq)

    async def _take_result(self, lease: Lease, stored: StoredSession, result: ToolResult) -> Submission:
        state = stored.state
        if state.running:
            stored = await self._close_orphaned(lease, stored)
            state = stored.state
        call = state.find_awaiting(result.call_id)
        if call is None:
            if result.call_id in state.answered:
                return Submission(InputAccepted(status="duplicate", after_seq=stored.last_seq))
            raise InputRefused(
                ErrorCode.UNKNOWN_CALL_ID,
                f"No tool call {result.call_id} is waiting for a result in this session.",
                call_id=result.call_id,
                pending=[c.call_id for c in state.awaiting()],
            )
        writer = EventWriter(self._store, self._feeds, lease, stored.last_seq)
        if call.approval == "pending" and result.error is None:
            # The client asked the user itself and ran the call (the IDE does): that was the user's approval. An
            # error says nothing sure about a decision (a refusal, or a failure), so none is recorded for it.
            decided = Approval(call_id=call.call_id, decision=ApprovalDecision.APPROVE)
            writer.append(self._approved(state, call, decided, ApprovalSource.TOOL_RESULT))
        if call.wire_name == REVIEW_TOOL and isinstance(result.result, dict):
            writer.append(self._reviewed(state, call, result.result))
        self._result_arrived(state, call, result)
        self._record(call, result.result, result.error)
        state.mark_answered(call.call_id)
        return await self._answered(writer, state, stored.last_seq)

    def _reviewed(self, state: SessionState, call: PendingCall, result: dict[str, Any]) -> Frame:
        """Record the user's hunk-by-hunk review as one decision: approve (every hunk accepted), reject (none
        kept), or edit; the rejected hunks' reasons are its feedback."""
        hunks = [hunk for hunk in result.get("hunks") or [] if isinstance(hunk, dict)]
        statuses = {hunk.get("status") for hunk in hunks}
        if statuses <= {"accepted"}:
            decision = ApprovalDecision.APPROVE
        elif statuses <= {"rejected"}:
            decision = ApprovalDecision.REJECT
        else:
            decision = ApprovalDecision.EDIT
        reasons = [f"{hunk.get('id')}: {hunk['reason']}" for hunk in hunks if isinstance(hunk.get("reason"), str)]
        feedback = "; ".join(reasons)[:4000] or None
        return self._decision_frame(state, call, decision, ApprovalSource.REVIEW, feedback=feedback)

    async def _answered(self, writer: EventWriter, state: SessionState, after_seq: int) -> Submission:
        """A call got its answer: wait for the others, or go on with the turn when none is left."""
        accepted = InputAccepted(after_seq=after_seq, message_id=state.turn_message_id)
        awaiting = state.awaiting()
        if awaiting:
            last = await writer.commit(state, deadline=self._deadline(state), release=True)
            return Submission(accepted, pending=[c.call_id for c in awaiting], written_seq=last)
        return await self._continue(writer, state, after_seq)

    async def _take_approval(
        self, lease: Lease, stored: StoredSession, approval: Approval, source: ApprovalSource
    ) -> Submission:
        """The user's decision on a call: run it (as it is, or edited), or tell the model it was rejected."""
        state = stored.state
        if state.running:
            stored = await self._close_orphaned(lease, stored)
            state = stored.state
        if approval.call_id in state.answered or _decided(state, approval):
            return Submission(InputAccepted(status="duplicate", after_seq=stored.last_seq))
        call = state.find_awaiting(approval.call_id)
        if call is None or call.purpose != "model":
            raise InputRefused(
                ErrorCode.UNKNOWN_CALL_ID,
                f"No tool call {approval.call_id} is waiting for a decision in this session.",
                call_id=approval.call_id,
                pending=[c.call_id for c in state.awaiting()],
            )
        rejecting = approval.decision is ApprovalDecision.REJECT
        if call.approval == "approved":
            raise InputRefused(
                ErrorCode.INVALID_FORMAT,
                f"Tool call {call.call_id} was approved and may be running: send its tool_result.",
                call_id=call.call_id,
            )
        if call.approval != "pending" and not rejecting:
            raise InputRefused(
                ErrorCode.INVALID_FORMAT,
                f"Tool call {call.call_id} needs no approval: it runs as sent; only a rejection applies to it.",
                call_id=call.call_id,
            )
        if approval.decision is ApprovalDecision.EDIT:
            call.arguments = self._edited_arguments(state, call, approval.arguments or {})
            call.edited = True
        if approval.remember is not None:
            state.remember(approval.remember)
        writer = EventWriter(self._store, self._feeds, lease, stored.last_seq)
        writer.append(self._approved(state, call, approval, source))
        if not rejecting:
            last = await writer.commit(state, deadline=self._deadline(state), release=True)
            accepted = InputAccepted(after_seq=stored.last_seq, message_id=state.turn_message_id)
            return Submission(accepted, pending=[c.call_id for c in state.awaiting()], written_seq=last)
        call.result = tool_messages.rejected_content(approval.feedback)
        self._metrics.tool_answered(call.wire_name, ToolOutcome.REJECTED, seconds=time.time() - call.since)
        state.mark_answered(call.call_id)
        return await self._answered(writer, state, stored.last_seq)

    def _edited_arguments(self, state: SessionState, call: PendingCall, edited: dict[str, object]) -> dict[str, Any]:
        """The user's edited arguments, checked against the tool's schema and the policy as the model's are."""
        spec = resolve(call.name)
        if spec is None:
            raise InputRefused(ErrorCode.INVALID_FORMAT, f"tool {call.name} is unknown here", call_id=call.call_id)
        try:
            arguments = tool_messages.parse_arguments(spec, orjson.dumps(edited).decode())
        except tool_messages.InvalidArguments as exc:
            raise InputRefused(ErrorCode.INVALID_FORMAT, f"edited arguments: {exc}", call_id=call.call_id) from None
        problem = patch_problem(arguments["patch"]) if spec.name == "apply_patch" else None
        if problem is not None:
            raise InputRefused(ErrorCode.INVALID_FORMAT, f"edited patch: {problem}", call_id=call.call_id)
        verdict = decide(spec.name, arguments, self._settings.approval_policy, state.approval_rules)
        if verdict.action is RuleAction.DENY:
            rule = verdict.rule.describe() if verdict.rule is not None else "deny"
            raise InputRefused(
                ErrorCode.DENIED, f"the approval policy does not allow the edited call ({rule})", call_id=call.call_id
            )
        return arguments

    def _approved(self, state: SessionState, call: PendingCall, approval: Approval, source: ApprovalSource) -> Frame:
        """Apply the decision to the call and give the frame that records it."""
        if approval.decision is ApprovalDecision.REJECT:
            call.approval = "rejected"
        else:
            call.approval = "approved"
            call.since = time.time()  # the call's own timeout starts now that it may run
        return self._decision_frame(
            state, call, approval.decision, source, feedback=approval.feedback, rule=approval.remember
        )

    def _decision_frame(
        self,
        state: SessionState,
        call: PendingCall,
        decision: ApprovalDecision,
        source: ApprovalSource,
        *,
        feedback: str | None = None,
        rule: ApprovalRule | None = None,
    ) -> Frame:
        """The `approval_recorded` frame of a decision (counted and logged)."""
        self._metrics.approval_decided(call.wire_name, decision.value)
        log.info(
            "approval_decided",
            session_id=state.session_id,
            call_id=call.call_id,
            tool=call.wire_name,
            decision=decision.value,
            source=source.value,
            rule=rule.describe() if rule is not None else None,
        )
        return frames.of_model(
            ApprovalRecorded(
                call_id=call.call_id,
                tool_name=call.wire_name,
                decision=decision,
                arguments=call.arguments,
                feedback=feedback,
                rule=rule,
                source=source,
                decided_at=time.time(),
                message_id=state.turn_message_id,
            )
        )

    async def _continue(self, writer: EventWriter, state: SessionState, after_seq: int) -> Submission:
        """Every pending call has its result: run the next step of the turn."""
        state.running = True
        await writer.commit(state)
        steps = self._loop.resume(state, self._catalog.select(state.turn_tools))
        return self._spawn(writer, state, steps, after_seq)

    async def _cancel(self, session_id: str, cancel: Cancel) -> Submission:
        step = self._steps.get(session_id)
        if step is not None:
            if cancel.message_id in (None, step.message_id):
                step.stop(_StopReason.USER)
            written = step.writer.written_seq if step.writer is not None else 0
            return Submission(InputAccepted(after_seq=written, message_id=step.message_id), step.outcome)
        lease = await self._take(session_id, self._settings.busy_wait_s)
        if lease is None:
            await self._store.request_cancel(session_id)  # the instance driving the step sees it within a second
            stored = await self._store.load(session_id)
            return Submission(InputAccepted(after_seq=stored.last_seq if stored is not None else 0))
        try:
            stored = await self._stored(lease)
            state = stored.state
            accepted = InputAccepted(after_seq=stored.last_seq, message_id=state.turn_message_id)
            wanted = cancel.message_id in (None, state.turn_message_id)
            if state.running:
                await self._close_orphaned(lease, stored)
            elif state.pending and wanted:
                writer = EventWriter(self._store, self._feeds, lease, stored.last_seq)
                await self._end_cancelled(writer, state)
                self._metrics.turn_ended(TurnOutcome.CANCELLED, state.step_count)
            return Submission(accepted)
        finally:
            await self._let_go(lease)

    # --- steps -----------------------------------------------------------------------------------------------------

    def _spawn(
        self, writer: EventWriter, state: SessionState, steps: AsyncIterator[Frame | StepEnd], after_seq: int
    ) -> Submission:
        message_id = state.turn_message_id or ""
        step = _Step(message_id, writer=writer)
        step.task = asyncio.create_task(self._drive(step, writer, state, steps), name=f"step-{state.session_id}")
        self._steps[state.session_id] = step
        return Submission(InputAccepted(after_seq=after_seq, message_id=message_id), step.outcome)

    async def _drive(
        self, step: _Step, writer: EventWriter, state: SessionState, steps: AsyncIterator[Frame | StepEnd]
    ) -> None:
        step.keeper = asyncio.create_task(self._keep_lease(step, writer.lease))
        end = StepEnd(StepStatus.FAILED, error_code=ErrorCode.INTERNAL)
        try:
            async for item in steps:
                if isinstance(item, StepEnd):
                    end = item
                    break
                writer.append(item)
            else:
                raise RuntimeError("the step ended without saying how")
            await self._end_step(step, writer, state, end)
        except asyncio.CancelledError:
            if step.stopped is _StopReason.LEASE_LOST:
                log.warning("session lease lost mid-step; the step stops without writing", session_id=state.session_id)
            if step.stopped is not _StopReason.USER:
                raise  # shutting down, or the lease is gone: write nothing
            if not state.running:
                return  # the cancel came as the step was writing its end, which the store finishes: nothing to undo
            last = await self._end_cancelled(writer, state)
            step.outcome.set_result(StepOutcome(StepDone(status=StepStatus.CANCELLED), last))
            self._metrics.turn_ended(TurnOutcome.CANCELLED, state.step_count)
        except LeaseLost:
            log.warning("session lease lost mid-step; another instance holds the session", session_id=state.session_id)
        except Exception:
            log.exception("step_failed", session_id=state.session_id)
            writer.append(
                frames.error(
                    ErrorCode.INTERNAL, "agent-runtime failed while running this turn.", message_id=step.message_id
                )
            )
            writer.append(frames.final(step.message_id, StopReason.ERROR))
            state.running = False
            with contextlib.suppress(Exception):
                await writer.commit(state, release=True)
            self._metrics.turn_ended(TurnOutcome.ERROR, state.step_count)
        finally:
            step.ended.set()
            if self._steps.get(state.session_id) is step:
                del self._steps[state.session_id]
            if not step.outcome.done():
                step.outcome.set_result(StepOutcome(StepDone(status=end.status), writer.written_seq))
            await writer.close()

    async def _end_step(self, step: _Step, writer: EventWriter, state: SessionState, end: StepEnd) -> None:
        """Write the step's last frames with the state, letting go of the lease in the same write."""
        state.running = False
        tracing.annotate({"codelab.step.status": end.status.value})
        last = await writer.commit(state, deadline=self._deadline(state), release=True)
        # No await from here on: a follower woken by the write above sees the step as ended.
        step.outcome.set_result(StepOutcome(StepDone(status=end.status, pending_call_ids=end.pending_call_ids), last))
        outcome = TurnOutcome.of(end.status, end.error_code)
        if outcome is not None:
            self._metrics.turn_ended(outcome, state.step_count)

    async def _end_cancelled(self, writer: EventWriter, state: SessionState) -> int:
        """Close the turn as cancelled: calls not answered yet are answered as cancelled, and the history keeps what
        was said so far."""
        for call in state.pending:
            if call.result is None:
                self._record(call, None, CANCELLED_RESULT)
        if state.gathering_context:
            state.pending = []
        else:
            state.close_tool_round()
        if state.messages and state.messages[-1].get("role") != "assistant":
            state.messages.append({"role": "assistant", "content": CANCELLED_ANSWER})
        state.running = False
        writer.append(frames.final(state.turn_message_id or "", StopReason.CANCELLED))
        last = await writer.commit(state, deadline=None, release=True)
        log.info("turn_cancelled", session_id=state.session_id)
        return last

    async def _keep_lease(self, step: _Step, lease: Lease) -> None:
        """Renew the lease while the step runs; stop the step when the lease is lost or a cancel was asked for
        through the database (by an instance that got the cancel while this one drives the turn)."""
        ttl = self._settings.lease_ttl_s
        every = renewal_interval(ttl)
        lost_at = time.monotonic() + ttl
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every):
                    await step.ended.wait()
            if step.ended.is_set():
                return
            try:
                if await self._store.renew(lease, ttl):
                    step.stop(_StopReason.USER)
                lost_at = time.monotonic() + ttl
            except LeaseLost:
                step.stop(_StopReason.LEASE_LOST)
                return
            except Exception as exc:
                log.warning("lease renewal failed", session_id=lease.session_id, error=str(exc))
                if time.monotonic() >= lost_at:
                    step.stop(_StopReason.LEASE_LOST)
                    return

    # --- the sweeper -----------------------------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        interval = min(self._settings.tool_timeout_s / 4, renewal_interval(self._settings.lease_ttl_s))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed")

    async def sweep(self) -> None:
        timed_out, expired = await self._store.due(time.time())
        for session_id in timed_out:
            await self._time_out(session_id)
        for dead in self._expiry.dead(expired, time.monotonic()):
            if dead.session_id in self._steps:
                continue
            lease = await self._store.acquire(dead.session_id, self._owner, self._settings.lease_ttl_s, dead=dead)
            if lease is not None:
                try:
                    await self._close_orphaned(lease, await self._stored(lease))
                finally:
                    await self._let_go(lease)

    async def _time_out(self, session_id: str) -> None:
        lease = await self._take(session_id, 0.0)
        if lease is None:
            return
        started = False
        try:
            stored = await self._stored(lease)
            state, now = stored.state, time.time()
            overdue = [call for call in state.awaiting() if call.since + self._timeout_s(call) <= now]
            writer = EventWriter(self._store, self._feeds, lease, stored.last_seq)
            for call in overdue:
                seconds = f"{self._timeout_s(call):g}"
                waited = "no decision" if call.approval == "pending" else "no result"
                writer.append(
                    frames.error(
                        ErrorCode.TOOL_TIMEOUT,
                        f"tool {call.wire_name} ({call.call_id}) got {waited} within {seconds} s; the model was told "
                        "it timed out",
                        call_id=call.call_id,
                        message_id=state.turn_message_id,
                    )
                )
                self._record(call, None, tool_timeout_error(seconds))
                self._metrics.tool_answered(call.wire_name, ToolOutcome.TIMEOUT, seconds=None)
            if overdue and not state.awaiting() and not state.running:
                log.warning("tool_calls_timed_out", session_id=session_id, call_ids=[c.call_id for c in overdue])
                await self._continue(writer, state, stored.last_seq)
                started = True
            else:
                await writer.commit(state, deadline=self._deadline(state), release=True)
        finally:
            if not started:
                await self._let_go(lease)

    async def _close_orphaned(self, lease: Lease, stored: StoredSession) -> StoredSession:
        """Close a turn whose step died with its instance: keep what the user saw, tell the client, end the turn."""
        state = stored.state
        if not state.running:
            return stored
        message_id = state.turn_message_id or ""
        shown = await self._shown_since(stored)
        if state.pending:
            for call in state.pending:
                if call.result is None:
                    self._record(call, None, "agent-runtime stopped before this call's result was used")
            if state.gathering_context:
                state.pending = []
            else:
                state.close_tool_round()
        state.messages.append({"role": "assistant", "content": shown if shown.strip() else ORPHANED_ANSWER})
        state.running = False
        writer = EventWriter(self._store, self._feeds, lease, stored.last_seq)
        writer.append(
            frames.error(
                ErrorCode.AGENT_DOWN,
                "agent-runtime stopped while it ran this turn; what was shown is kept. Send your message again to "
                "continue.",
                message_id=message_id,
            )
        )
        writer.append(frames.final(message_id, StopReason.ERROR))
        last = await writer.commit(state, deadline=None)
        log.warning("orphaned_turn_closed", session_id=state.session_id)
        self._metrics.turn_ended(TurnOutcome.ERROR, state.step_count)
        return StoredSession(state, last, last, stored.lease_owner, stored.lease_until, False)

    async def _shown_since(self, stored: StoredSession) -> str:
        """The answer text logged after the state was last saved: what the user saw of the step that died."""
        message_id = stored.state.turn_message_id
        parts: list[str] = []
        cursor = stored.state_seq
        while True:
            events = await self._store.events_after(stored.state.session_id, cursor)
            for seq, text in events:
                cursor = seq
                frame = orjson.loads(text)
                if frame.get("type") == "assistant_message" and frame.get("message_id") == message_id:
                    parts.append(frame.get("content") or "")
            if not events:
                return "".join(parts)

    # --- helpers ---------------------------------------------------------------------------------------------------

    async def _take(self, session_id: str, wait_s: float) -> Lease | None:
        deadline = time.monotonic() + wait_s
        while True:
            lease = await self._store.acquire(session_id, self._owner, self._settings.lease_ttl_s)
            if lease is not None or time.monotonic() >= deadline:
                return lease
            await asyncio.sleep(0.05)

    async def _let_go(self, lease: Lease) -> None:
        with contextlib.suppress(Exception):
            await self._store.release(lease)

    async def _stored(self, lease: Lease) -> StoredSession:
        """The session as it was when the lease was taken."""
        if lease.taken is None:
            raise LeaseLost(lease.session_id)
        return lease.taken

    def _deadline(self, state: SessionState) -> float | None:
        awaiting = state.awaiting()
        return min(call.since + self._timeout_s(call) for call in awaiting) if awaiting else None

    def _timeout_s(self, call: PendingCall) -> float:
        """How long the call may wait: for the user's decision (a review is one), or for its result."""
        if call.approval == "pending" or call.wire_name == REVIEW_TOOL:
            return self._settings.approval_timeout_s
        return self._settings.tool_timeout_s

    def _record(self, call: PendingCall, result: dict[str, object] | str | None, error: str | None) -> None:
        if call.purpose == "context":
            call.result = orjson.dumps({"result": result, "error": error}).decode()
            return
        call.result = tool_messages.result_content(result, error, self._settings.tool_result_max_chars)
        if call.edited:
            call.result = tool_messages.edited_note(call.arguments) + call.result

    def _result_arrived(self, state: SessionState, call: PendingCall, result: ToolResult) -> None:
        """Count the call's outcome and round trip, and trace the round trip from the step that sent the call."""
        outcome = ToolOutcome.of(result.error)
        self._metrics.tool_answered(call.wire_name, outcome, seconds=time.time() - call.since)
        span = tracing.start_span(
            f"tool {call.wire_name}",
            parent=tracing.context_of(call.traceparent),
            start_time_ns=int(call.since * 1e9),
            attributes={"codelab.tool.name": call.wire_name, "codelab.tool.call_id": call.call_id},
        )
        tracing.link_from_current(span)
        failed = outcome in (ToolOutcome.ERROR, ToolOutcome.TIMEOUT)
        tracing.finish(span, {"codelab.tool.outcome": outcome.value}, error=outcome.value if failed else None)

    # --- reading ---------------------------------------------------------------------------------------------------

    async def start_seq(self, session_id: str) -> int:
        """Where a follower that names no seq starts: before the running turn's first frame, else at the end."""
        stored = await self._store.load(session_id)
        if stored is None:
            return 0
        state = stored.state
        if state.running or state.pending:
            return max(state.turn_start_seq - 1, 0)
        return stored.last_seq

    async def describe(self, session_id: str) -> SessionView | None:
        stored = await self._store.load(session_id)
        if stored is None or stored.last_seq == 0:  # no turn yet (a refused input leaves an empty row)
            return None
        state = stored.state
        return SessionView(
            session_id=state.session_id,
            status=state.status.value,
            messages=state.messages,
            pending_calls=[
                PendingCallView(
                    call_id=call.call_id,
                    tool_name=call.wire_name,
                    arguments=call.arguments,
                    since=call.since,
                    has_result=call.result is not None,
                    approval=call.approval,
                )
                for call in state.pending
            ],
            turn_message_id=state.turn_message_id,
            step_count=state.step_count,
            last_seq=stored.last_seq,
            created_at=state.created_at,
            updated_at=state.updated_at,
        )

    async def approvals(self, session_id: str) -> ApprovalsView | None:
        """Every decision taken in the session, oldest first, as its log holds them, and the rules it remembers."""
        stored = await self._store.load(session_id)
        if stored is None or stored.last_seq == 0:
            return None
        decisions: list[ApprovalRecorded] = []
        cursor = 0
        while cursor < stored.last_seq:
            page = await self._store.events_after(session_id, cursor)
            if not page:
                break
            decisions += [
                ApprovalRecorded.model_validate_json(text)
                for _, text in page
                if frame_type(text) == "approval_recorded"
            ]
            cursor = page[-1][0]
        return ApprovalsView(session_id=session_id, decisions=decisions, rules=stored.state.approval_rules)


def _decided(state: SessionState, frame: ToolResult | Approval) -> bool:
    """An approval sent again (after a reconnect) for a call already decided the same way."""
    if not isinstance(frame, Approval) or frame.decision is ApprovalDecision.REJECT:
        return False
    call = state.find_awaiting(frame.call_id)
    return call is not None and call.approval == "approved"
