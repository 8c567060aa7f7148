"""One step of a turn: gather the context, stream a reply, hand its tool calls to the client, or finish.

A step yields the frames it writes and, last, a `StepEnd`; it changes the session's state in memory and the runner
saves that state with the step's last frames in one write, so a result that comes back at once, or a restart of the
service, finds the session as the client saw it. Text the user was shown goes into the history also when the model
stream fails or the turn is cancelled mid-answer.

Guards that keep a small model's turn going instead of ending it:
- a call with an unknown tool or arguments that do not fit the schema is not sent to the client; the model gets
  the validation error as that call's result and can correct it;
- every call goes through the approval policy (`codelab_common.protocol.approvals`): a denied call is not sent
  (the model is told why), one the policy asks about goes out with `requires_approval: true`, or, for an
  `apply_patch` to a client that runs `apply_patch_review`, as that review (the user decides hunk by hunk);
- an `apply_patch` whose patch is not a unified diff, or touches a path outside the project, is not sent;
- a call the model already made this turn is answered from the earlier result with a short note; after
  `MAX_REPEATS` of those the model is asked for an answer without tools, and so is the turn's last allowed step,
  so a turn ends with an answer rather than at the step limit; a call that failed and is made again
  `MAX_FAILED_REPEATS` times stops the turn with `REPEATED_CALL` (the model is stuck; the user is told why);
- an answer that writes a tool call or result as text (no tool ran) is cut where the record starts, never shown
  from there on, and sent back to the model once with what was wrong;
- an answer that reports work that was not done (`answer_checks`) is sent back with what is missing
  (`MAX_RETRIES` times a turn);
- an answer sent back that comes back word for word is not shown again: the turn ends with it (`_Echo`).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
import structlog

from codelab_agent_runtime.core.config import Settings
from codelab_agent_runtime.llm.client import LLMClient, LLMError, ModelReply, ToolCallDraft
from codelab_agent_runtime.models.session import PendingCall, SessionState
from codelab_agent_runtime.tools import messages as tool_messages
from codelab_agent_runtime.tools.catalog import Toolset
from codelab_agent_runtime.tools.records import RecordFinder, call_written_as_text
from codelab_agent_runtime.turns import answer_checks, frames, plans, workspace_context
from codelab_agent_runtime.turns.context_window import CHARS_PER_TOKEN, ContextWindow, Fitted
from codelab_agent_runtime.turns.frames import Frame, StepEnd
from codelab_agent_runtime.turns.prompt import system_prompt
from codelab_common import tracing
from codelab_common.patches import patch_problem
from codelab_common.protocol import ErrorCode, RuleAction, StepStatus, StopReason, ToolCall, Usage
from codelab_common.protocol.approvals import decide

log = structlog.get_logger(__name__)

MAX_REPEATS = 2
REVIEW_TOOL = "apply_patch_review"
MAX_FAILED_REPEATS = 2
MAX_CORRECTIONS = 1
MAX_RETRIES = 2
NO_ANSWER = "I could not finish this request: the model wrote a tool call as text instead of calling the tool."
EMPTY_ANSWER = "The model ended this turn without an answer; ask again or rephrase the request."
PARAGRAPH = "\n\n"
"""Shown after an answer that went back to the model, so what the model says next starts a paragraph of its own."""


class ModelLoop:
    def __init__(self, settings: Settings, llm: LLMClient, context: ContextWindow) -> None:
        self._settings = settings
        self._llm = llm
        self._context = context

    async def start(self, state: SessionState, toolset: Toolset, request: str) -> AsyncIterator[Frame | StepEnd]:
        """Begin the turn just started on `state`: ask the client for its context, or call the model at once."""
        # Only a client that named the tools it executes surely runs them; a bare client (the seed's example) would
        # leave the turn waiting for the context's results until the tool timeout.
        declared = state.turn_tools is not None
        wanted = (
            workspace_context.context_calls(request, toolset.names)
            if declared and self._settings.workspace_context
            else []
        )
        calls = self._context_calls(wanted, toolset, state)
        if calls:
            state.pending = calls
            async for event in self._send_calls(state, calls):
                yield event
            return
        async for event in self.advance(state, toolset):
            yield event

    async def resume(self, state: SessionState, toolset: Toolset) -> AsyncIterator[Frame | StepEnd]:
        """Go on once every pending call has its result."""
        if state.gathering_context:
            first_round = not state.context_pieces
            outcomes = [(call, orjson.loads(call.result or "{}")) for call in state.pending]
            state.context_pieces += [
                workspace_context.render_piece(call.name, call.arguments, out.get("result"), out.get("error"))
                for call, out in outcomes
            ]
            state.pending = []
            listing = next((out.get("result") for call, out in outcomes if call.name == "list_files"), None)
            read = [str(call.arguments.get("path")) for call, _ in outcomes if call.name == "read_file"]
            more = workspace_context.more_reads(listing, read) if first_round else []
            if more:
                state.pending = self._context_calls(more, toolset, state)
                async for event in self._send_calls(state, state.pending):
                    yield event
                return
            user = state.messages[state.turn_start]
            content = workspace_context.compose(state.context_pieces, user["content"])
            state.messages[state.turn_start] = {**user, "content": content}
        else:
            state.close_tool_round()
        async for event in self.advance(state, toolset):
            yield event

    async def advance(self, state: SessionState, toolset: Toolset) -> AsyncIterator[Frame | StepEnd]:
        """Call the model until it asks the client for tools or answers; yields frames, a `StepEnd` last."""
        message_id = state.turn_message_id or new_id("msg")
        records = _record_finder(toolset.names)
        sent_back: str | None = None
        """The answer just sent back to the model, while the next reply may repeat it."""
        while True:
            if state.step_count >= self._settings.max_steps:
                async for event in self._stop_at_step_limit(state, message_id):
                    yield event
                return
            state.step_count += 1
            answer_only = state.repeats >= MAX_REPEATS or state.step_count >= self._settings.max_steps
            reply = ModelReply()
            shown = _VisibleText(records)
            echo = _Echo(sent_back)
            sent_back = None
            started = time.perf_counter()
            fitted = await self._context.fit(state, system_prompt(toolset.names), toolset.definitions, state.turn_model)
            messages = fitted.messages
            try:
                tool_choice = "none" if answer_only else None
                stream = self._llm.stream(
                    messages,
                    toolset.definitions,
                    tool_choice=tool_choice,
                    session_id=state.session_id,
                    model=state.turn_model,
                )
                async for item in stream:
                    if isinstance(item, ModelReply):
                        reply = item
                        continue
                    visible = echo.take(shown.take(item))
                    if visible:
                        yield frames.delta(message_id, visible)
                rest = echo.take(shown.rest())
                if rest:
                    yield frames.delta(message_id, rest)
            except LLMError as exc:
                log.warning("model_call_failed", session_id=state.session_id, step=state.step_count, error=str(exc))
                _keep_shown(state, shown.shown, "(the model failed before answering)")
                yield frames.error(ErrorCode.LLM_ERROR, f"The model failed: {exc}", message_id=message_id)
                yield frames.final(message_id, StopReason.ERROR)
                yield StepEnd(StepStatus.FAILED, error_code=ErrorCode.LLM_ERROR)
                return
            except BaseException:
                # Cancelled by the user, or the step failed: what the user saw of this answer stays in the history.
                _keep_shown(state, shown.shown, None)
                raise
            drafts = [] if answer_only else reply.tool_calls()
            log.info(
                "model_call",
                session_id=state.session_id,
                step=state.step_count,
                tool_calls=len(drafts),
                chars=len(reply.content),
                record_at=shown.record_at,
                seconds=round(time.perf_counter() - started, 3),
            )
            if not drafts and echo.repeated:
                # The model said again what it was told is not enough: the user has seen it; the turn ends there.
                if state.messages and state.messages[-1]["role"] == "user":
                    state.messages.pop()  # the note that sent it back: the history keeps what the user saw
                log.info("answer_repeated", session_id=state.session_id, step=state.step_count)
                yield frames.final(message_id)
                yield StepEnd(StepStatus.COMPLETED)
                return
            if not drafts:
                if shown.record_at is not None and state.corrections < MAX_CORRECTIONS:
                    state.corrections += 1
                    if shown.text.strip():
                        state.messages.append({"role": "assistant", "content": shown.text})
                        yield frames.delta(message_id, PARAGRAPH)
                    correction = _correction(reply.content[shown.record_at :], toolset)
                    state.messages.append({"role": "user", "content": correction})
                    sent_back = shown.text
                    log.info("tool_record_in_answer", session_id=state.session_id, step=state.step_count)
                    continue
                unfinished = None
                if not answer_only and state.retries < MAX_RETRIES:
                    unfinished = answer_checks.unfinished(shown.text, state.turn_messages(), toolset.names)
                if unfinished is not None:
                    state.retries += 1
                    if shown.text.strip():
                        state.messages.append({"role": "assistant", "content": shown.text})
                        yield frames.delta(message_id, PARAGRAPH)
                    state.messages.append({"role": "user", "content": unfinished})
                    sent_back = shown.text
                    log.info("answer_sent_back", session_id=state.session_id, step=state.step_count)
                    continue
                answer = shown.text
                if not answer.strip():
                    answer = NO_ANSWER if shown.record_at is not None else EMPTY_ANSWER
                    yield frames.delta(message_id, answer)
                state.messages.append({"role": "assistant", "content": answer})
                yield frames.final(message_id, usage=_usage(fitted, reply))
                yield StepEnd(StepStatus.COMPLETED)
                return
            taken = {m["tool_call_id"] for m in state.messages if m.get("role") == "tool"}
            carried_out: list[Frame] = []
            calls = self._triage(drafts, toolset, taken, state, carried_out)
            for frame in carried_out:
                yield frame
            repeated = _answer_repeats(calls, state.turn_messages())
            state.repeats += len(repeated)
            state.failed_repeats += sum(1 for call in repeated if _is_error(call.result))
            state.messages.append(_assistant_with_calls(shown.text, calls))
            state.pending = calls
            if state.failed_repeats >= MAX_FAILED_REPEATS:
                async for event in self._stop_repeating(state, message_id, repeated[-1]):
                    yield event
                return
            forwarded = [call for call in calls if call.forwarded]
            if not forwarded:
                state.close_tool_round()
                continue
            async for event in self._send_calls(state, forwarded):
                yield event
            return

    def _context_calls(
        self, wanted: list[workspace_context.ContextCall], toolset: Toolset, state: SessionState
    ) -> list[PendingCall]:
        """The reads that gather a turn's context; only those the policy lets run unasked (no one is asked to approve
        what the agent gathers by itself)."""
        calls = []
        policy = self._settings.approval_policy
        for call in wanted:
            spec = toolset.lookup(call.name)
            if (
                spec is None
                or decide(spec.name, call.arguments, policy, state.approval_rules).action is not RuleAction.ALLOW
            ):
                continue
            calls.append(
                PendingCall(
                    call_id=new_id("call"),
                    name=spec.name,
                    wire_name=spec.wire,
                    arguments=call.arguments,
                    purpose="context",
                )
            )
        return calls

    async def _send_calls(self, state: SessionState, calls: list[PendingCall]) -> AsyncIterator[Frame | StepEnd]:
        """Send each call to the client, and end the step waiting for their results."""
        message_id = state.turn_message_id or new_id("msg")
        for call in calls:
            call.traceparent = tracing.traceparent()
        for call in calls:
            frame = ToolCall(
                call_id=call.call_id,
                tool_name=call.wire_name,
                arguments=call.arguments,
                requires_approval=call.approval == "pending",
                message_id=message_id,
            )
            yield frames.of_model(frame)
        yield StepEnd(StepStatus.AWAITING_TOOL_RESULTS, [call.call_id for call in calls])

    async def _stop_at_step_limit(self, state: SessionState, message_id: str) -> AsyncIterator[Frame | StepEnd]:
        limit = self._settings.max_steps
        note = f"I stopped: this request needed more than {limit} model steps."
        state.messages.append({"role": "assistant", "content": note})
        log.warning("step_limit", session_id=state.session_id, max_steps=limit)
        yield frames.error(ErrorCode.STEP_LIMIT, note, message_id=message_id)
        yield frames.delta(message_id, note)
        yield frames.final(message_id, StopReason.ERROR)
        yield StepEnd(StepStatus.FAILED, error_code=ErrorCode.STEP_LIMIT)

    async def _stop_repeating(
        self, state: SessionState, message_id: str, call: PendingCall
    ) -> AsyncIterator[Frame | StepEnd]:
        """End the turn: the model keeps making a call that fails. The round's calls are not run."""
        for pending in state.pending:
            if pending.forwarded:
                pending.forwarded = False
                pending.result = tool_messages.error_content("not run: the turn was stopped")
        state.close_tool_round()
        failure = (call.result or "").split("\n", 1)[0][:300]
        note = (
            f"I stopped: the model kept calling {call.name} with the same arguments although it failed each time "
            f"({failure}). Rephrase the request, or fix what the error says and ask again."
        )
        state.messages.append({"role": "assistant", "content": note})
        log.warning("repeated_failing_call", session_id=state.session_id, tool=call.name)
        yield frames.error(ErrorCode.REPEATED_CALL, note, message_id=message_id)
        yield frames.delta(message_id, note)
        yield frames.final(message_id, StopReason.ERROR)
        yield StepEnd(StepStatus.FAILED, error_code=ErrorCode.REPEATED_CALL)

    def _triage(
        self,
        drafts: list[ToolCallDraft],
        toolset: Toolset,
        taken: set[str],
        state: SessionState,
        carried_out: list[Frame],
    ) -> list[PendingCall]:
        """Every call of the reply as a PendingCall; those the client must not run carry their result already (an
        error, or the outcome of a tool carried out here, whose frames go to `carried_out`)."""
        calls = []
        for draft in drafts:
            call_id = draft.id if draft.id and draft.id not in taken else new_id("call")
            taken.add(call_id)
            raw = "".join(draft.arguments)
            spec = toolset.lookup(draft.name)
            if spec is None:
                calls.append(_rejected(call_id, draft.name, _unknown_tool(draft.name, toolset)))
                continue
            try:
                arguments = tool_messages.parse_arguments(spec, raw)
            except tool_messages.InvalidArguments as exc:
                calls.append(_rejected(call_id, spec.name, str(exc)))
                continue
            problem = patch_problem(arguments["patch"]) if spec.name == "apply_patch" else None
            if problem is not None:
                calls.append(_rejected(call_id, spec.name, f"apply_patch: {problem}"))
                continue
            if spec.runs_on == "agent":
                written, result = plans.apply(state, arguments, state.turn_message_id or "")
                carried_out += written
                done = PendingCall(call_id=call_id, name=spec.name, wire_name=spec.wire, arguments=arguments)
                done.forwarded, done.result = False, result
                calls.append(done)
                continue
            verdict = decide(spec.name, arguments, self._settings.approval_policy, state.approval_rules)
            if verdict.action is RuleAction.DENY:
                rule = verdict.rule.describe() if verdict.rule is not None else "deny"
                calls.append(_denied(call_id, spec.name, rule))
                continue
            call = PendingCall(call_id=call_id, name=spec.name, wire_name=spec.wire, arguments=arguments)
            if verdict.action is RuleAction.ASK:
                if spec.name == "apply_patch" and REVIEW_TOOL in (state.turn_tools or ()):
                    call.wire_name = REVIEW_TOOL  # the user approves it hunk by hunk
                else:
                    call.approval = "pending"
            calls.append(call)
        return calls


class _Echo:
    """Holds a reply's text back while it repeats, from its start, the answer sent back just before; once it says
    something else, releases it from the last sentence or line it repeated whole. `repeated` at the end: it said
    nothing else."""

    __slots__ = ("_held", "_previous")

    def __init__(self, previous: str | None) -> None:
        self._previous = previous.strip() if previous and previous.strip() else None
        self._held = ""

    def take(self, text: str) -> str:
        if self._previous is None or not text:
            return text
        held = self._held + text
        if self._previous.startswith(held.lstrip()):
            self._held = held
            return ""
        previous, self._previous, self._held = self._previous, None, ""
        # What goes on from a whole sentence or line already said is shown from there, not said twice.
        text = held.lstrip()
        same = next((i for i, (a, b) in enumerate(zip(text, previous, strict=False)) if a != b), len(text))
        ends = [text.rfind(mark, 0, same) + len(mark) for mark in (". ", "\n", ": ") if text.rfind(mark, 0, same) > 0]
        return text[max(ends) :] if ends else held

    @property
    def repeated(self) -> bool:
        return self._previous is not None and bool(self._held.strip())


class _VisibleText:
    """The part of one reply the user may see: all of it, up to the first tool record written as text.

    A record's first characters may arrive before it can be recognised, so a short tail that opens with `{` or `<`
    and is not closed yet is held until the next token (or `rest()` at the end of the reply)."""

    __slots__ = ("_finder", "_sent", "_text", "record_at")

    HOLD = 48
    """Longer than any record's recognisable opening (`{"name": "<tool>"`, `<tool_response>`)."""

    def __init__(self, finder: RecordFinder) -> None:
        self._finder = finder
        self._text = ""
        self._sent = 0
        self.record_at: int | None = None

    def take(self, token: str) -> str:
        """What may be shown now that `token` arrived."""
        if self.record_at is not None:
            return ""
        self._text += token
        at = self._finder.find(self._text, max(0, self._sent - self.HOLD))
        if at is not None:
            opener = _OPENER.search(self._text, 0, at)
            self.record_at = at = opener.start() if opener else at
            return self._release(max(at, self._sent))
        return self._release(self._safe_end())

    def rest(self) -> str:
        """What was held at the end of the reply and turned out to be no record."""
        return "" if self.record_at is not None else self._release(len(self._text))

    @property
    def text(self) -> str:
        return self._text if self.record_at is None else self._text[: self.record_at]

    @property
    def shown(self) -> str:
        """What the user has been sent of this reply so far."""
        return self._text[: self._sent]

    def _safe_end(self) -> int:
        opening = max(self._text.rfind("{", self._sent), self._text.rfind("<", self._sent))
        if opening < 0 or len(self._text) - opening > self.HOLD:
            return len(self._text)
        tail = self._text[opening:]
        return len(self._text) if "}" in tail or ">" in tail else opening

    def _release(self, end: int) -> str:
        piece = self._text[self._sent : end]
        self._sent = max(self._sent, end)
        return piece


_OPENER = re.compile(r"(?:```[A-Za-z]*\s*|<tool_call>\s*)$")
"""A fence or tag that opens the record right after it; cut with the record."""

_FINDERS: dict[tuple[str, ...], RecordFinder] = {}


def _record_finder(names: tuple[str, ...]) -> RecordFinder:
    finder = _FINDERS.get(names)
    if finder is None:
        finder = _FINDERS[names] = RecordFinder.for_tools(names)
    return finder


def _answer_repeats(calls: list[PendingCall], turn: list[dict[str, Any]]) -> list[PendingCall]:
    """Answer, from the earlier result, each call the model already made this turn; returns those calls."""
    earlier = _earlier_results(turn)
    repeated = []
    for call in calls:
        if not call.forwarded:
            continue
        key = (call.name, _canonical(call.arguments))
        if key in earlier:
            call.forwarded = False
            call.result = tool_messages.repeated_content(earlier[key])
            repeated.append(call)
        else:
            earlier[key] = tool_messages.error_content("this call is already in your answer above; it runs once")
    return repeated


def _is_error(result: str | None) -> bool:
    """Whether a tool message reports a failure (an `error` key), read from its first line."""
    if not result:
        return False
    try:
        body = orjson.loads(result.split("\n", 1)[0])
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and "error" in body


def _earlier_results(turn: Iterable[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(tool, arguments) → the first result of that call in the turn's messages."""
    calls: dict[str, tuple[str, str]] = {}
    results: dict[tuple[str, str], str] = {}
    for message in turn:
        for call in message.get("tool_calls") or ():
            function = call["function"]
            calls[call["id"]] = (function["name"], _canonical(_loads(function["arguments"])))
        if message.get("role") == "tool":
            key = calls.get(message.get("tool_call_id", ""))
            if key is not None:
                results.setdefault(key, message.get("content") or "")
    return results


def _correction(record: str, toolset: Toolset) -> str:
    """What the model is told when its answer wrote a tool call or result as text."""
    written = call_written_as_text(record)
    intro = "Your last answer wrote a tool call or tool result as text, so no tool ran and nothing was done."
    if written is not None:
        name, arguments = written
        spec = toolset.lookup(name)
        if spec is None:
            return f"{intro} {_unknown_tool(name, toolset)}."
        try:
            tool_messages.parse_arguments(spec, orjson.dumps(arguments).decode() if arguments is not None else "")
        except tool_messages.InvalidArguments as exc:
            return f"{intro} The call was wrong: {exc}. Call the tool again with correct arguments."
    return f"{intro} To use a tool, answer with only the call. To answer me, write plain text."


_INTENTS = (
    (("create", "new", "make", "add"), "write_file"),
    (("edit", "change", "modify", "replace", "update", "fix", "rename", "set"), "edit_file"),
    (("run", "exec", "shell", "test", "command"), "run_command"),
    (("read", "open", "cat", "show", "view", "get"), "read_file"),
    (("list", "ls", "dir", "tree"), "list_files"),
    (("search", "find", "grep"), "search_in_project"),
)
"""Words in the names models invent for tools (`create_file`, `change_file`, `run_tests`), and the tool meant."""


def _unknown_tool(name: str, toolset: Toolset) -> str:
    offered = ", ".join(toolset.names) or "none"
    words_of = name.lower()
    hint = next((tool for words, tool in _INTENTS if tool in toolset.names and any(w in words_of for w in words)), None)
    return f"there is no tool {name!r} here ({f'use {hint}; ' if hint else ''}the tools you can call: {offered})"


def _canonical(arguments: Any) -> str:
    return orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS).decode()


def _loads(arguments: str) -> Any:
    try:
        return orjson.loads(arguments or "{}")
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


def _usage(fitted: Fitted, reply: ModelReply) -> dict[str, Any]:
    usage = Usage(
        prompt_tokens=fitted.prompt_tokens,
        completion_tokens=len(reply.content) // CHARS_PER_TOKEN,
        context_window=fitted.window,
        counted_by=fitted.counted_by,
    )
    return usage.model_dump()


def _denied(call_id: str, name: str, rule: str) -> PendingCall:
    return PendingCall(
        call_id=call_id, name=name, wire_name=name, forwarded=False, result=tool_messages.denied_content(rule)
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


def _keep_shown(state: SessionState, shown: str, otherwise: str | None) -> None:
    """End the history with what the user saw of the reply the model was writing (or `otherwise` when nothing)."""
    text = shown if shown.strip() else otherwise
    if text is not None:
        state.messages.append({"role": "assistant", "content": text})


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"
