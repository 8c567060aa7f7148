"""One turn's model calls: stream a reply, hand its tool calls to the client, or finish the turn.

State is saved before any frame that lets the client act (tool calls, the end of the turn), so a result that
comes back at once, or a restart of the service, finds the session as the client saw it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog

from codelab_agent_runtime.core.config import Settings
from codelab_agent_runtime.models.session import PendingCall, SessionState
from codelab_agent_runtime.services import sse_frames, tool_messages
from codelab_agent_runtime.services.context_window import build_messages
from codelab_agent_runtime.services.llm_client import LLMClient, LLMError, ModelReply, ToolCallDraft
from codelab_agent_runtime.services.prompt import system_prompt
from codelab_agent_runtime.services.session_store import SessionStore
from codelab_agent_runtime.services.tool_catalog import Toolset
from codelab_common.protocol import ErrorCode, StepStatus, ToolCall

log = structlog.get_logger(__name__)


class ModelLoop:
    def __init__(self, settings: Settings, store: SessionStore, llm: LLMClient) -> None:
        self._settings = settings
        self._store = store
        self._llm = llm

    async def advance(self, state: SessionState, toolset: Toolset) -> AsyncIterator[bytes]:
        """Call the model until it asks the client for tools or answers; yields SSE events, `done` last."""
        message_id = state.turn_message_id or new_id("msg")
        answer_only = False
        while True:
            if state.step_count >= self._settings.max_steps:
                async for event in self._stop_at_step_limit(state, message_id):
                    yield event
                return
            state.step_count += 1
            reply = ModelReply()
            started = time.perf_counter()
            messages = build_messages(system_prompt(toolset.names), state.messages, self._settings.context_max_chars)
            try:
                tool_choice = "none" if answer_only else None
                async for token in self._llm.stream(messages, toolset.definitions, reply, tool_choice=tool_choice):
                    yield sse_frames.delta_event(message_id, token)
            except LLMError as exc:
                log.warning("model_call_failed", session_id=state.session_id, step=state.step_count, error=str(exc))
                await self._store.save(state)
                yield sse_frames.error_event(ErrorCode.LLM_ERROR, f"The model failed: {exc}", message_id=message_id)
                yield sse_frames.done_event(StepStatus.FAILED)
                return
            drafts = [] if answer_only else reply.tool_calls()
            log.info(
                "model_call",
                session_id=state.session_id,
                step=state.step_count,
                tool_calls=len(drafts),
                chars=len(reply.content),
                seconds=round(time.perf_counter() - started, 3),
            )
            if not drafts:
                state.messages.append({"role": "assistant", "content": reply.content})
                await self._store.save(state)
                yield sse_frames.final_event(message_id)
                yield sse_frames.done_event(StepStatus.COMPLETED)
                return
            if _all_repeated(drafts, state.messages):
                log.info("repeated_tool_calls", session_id=state.session_id, step=state.step_count)
                answer_only = True
                continue
            taken = {m["tool_call_id"] for m in state.messages if m.get("role") == "tool"}
            calls = self._triage(drafts, toolset, taken)
            state.messages.append(_assistant_with_calls(reply.content, calls))
            state.pending = calls
            forwarded = [call for call in calls if call.forwarded]
            if not forwarded:
                state.close_tool_round()
                continue
            await self._store.save(state)
            for call in forwarded:
                spec = toolset.lookup(call.name)
                frame = ToolCall(
                    call_id=call.call_id,
                    tool_name=call.wire_name,
                    arguments=call.arguments,
                    requires_approval=spec is not None and toolset.requires_approval(spec),
                    message_id=message_id,
                )
                yield sse_frames.frame_event(frame)
            yield sse_frames.done_event(StepStatus.AWAITING_TOOL_RESULTS, [call.call_id for call in forwarded])
            return

    async def _stop_at_step_limit(self, state: SessionState, message_id: str) -> AsyncIterator[bytes]:
        limit = self._settings.max_steps
        note = f"I stopped: this request needed more than {limit} model steps."
        state.messages.append({"role": "assistant", "content": note})
        await self._store.save(state)
        log.warning("step_limit", session_id=state.session_id, max_steps=limit)
        yield sse_frames.error_event(ErrorCode.STEP_LIMIT, note, message_id=message_id)
        yield sse_frames.final_event(message_id)
        yield sse_frames.done_event(StepStatus.FAILED)

    def _triage(self, drafts: list[ToolCallDraft], toolset: Toolset, taken: set[str]) -> list[PendingCall]:
        """Every call of the reply as a PendingCall; those the client must not run carry their error already."""
        calls = []
        for draft in drafts:
            call_id = draft.id if draft.id and draft.id not in taken else new_id("call")
            taken.add(call_id)
            raw = "".join(draft.arguments)
            spec = toolset.lookup(draft.name)
            if spec is None:
                offered = ", ".join(toolset.names) or "none"
                error = f"there is no tool {draft.name!r} here; the tools you can call: {offered}"
                calls.append(_rejected(call_id, draft.name, error))
                continue
            try:
                arguments = tool_messages.parse_arguments(spec, raw)
            except tool_messages.InvalidArguments as exc:
                calls.append(_rejected(call_id, spec.name, str(exc)))
                continue
            calls.append(PendingCall(call_id=call_id, name=spec.name, wire_name=spec.wire, arguments=arguments))
        return calls


def _all_repeated(drafts: list[ToolCallDraft], messages: list[dict[str, Any]]) -> bool:
    """Whether every call of a reply was already made, with the same arguments, earlier in this turn.

    Small models tend to call the same tool again instead of answering from its result; the loop then asks the
    model for an answer without tools rather than running the same call until the step limit.
    """
    earlier: set[tuple[str, str]] = set()
    for message in reversed(messages):
        if message.get("role") == "user":
            break
        for call in message.get("tool_calls") or ():
            earlier.add((call["function"]["name"], _canonical(call["function"]["arguments"])))
    return bool(drafts) and all((d.name, _canonical("".join(d.arguments))) in earlier for d in drafts)


def _canonical(arguments: str) -> str:
    try:
        return orjson.dumps(orjson.loads(arguments or "{}"), option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONDecodeError:
        return arguments


def _rejected(call_id: str, name: str, error: str) -> PendingCall:
    return PendingCall(
        call_id=call_id,
        name=name,
        wire_name=name,
        forwarded=False,
        result=tool_messages.error_content(error),
    )


def _assistant_with_calls(content: str, calls: list[PendingCall]) -> dict[str, Any]:
    """The assistant message as history keeps it; arguments are re-serialised so they are always valid JSON."""
    return {
        "role": "assistant",
        "content": content or None,
        "tool_calls": [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": orjson.dumps(call.arguments).decode()},
            }
            for call in calls
        ],
    }


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"
