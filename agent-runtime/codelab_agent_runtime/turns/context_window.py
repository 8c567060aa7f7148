"""What each model call sends: the system prompt and the history, made to fit the model's context window.

The window is llm-proxy's `context_length` for the model (`AGENT_RUNTIME__DEFAULT_CONTEXT_WINDOW` when it does not
say); the prompt may take the window less the reply's room (`max_tokens`, or `REPLY_RESERVE` tokens) and a margin.
Tokens are estimated as characters ÷ `CHARS_PER_TOKEN` (3): code and English run 3.5–4.5 characters a token with the
Qwen and GPT tokenizers, so the estimate overcounts by a fifth or more, which is the safety margin. When the history
does not fit, in this order, until it does:

1. tool results of earlier turns are shortened, oldest first, to their first lines and a marker saying how much was
   left out and how to see it again;
2. the earlier turns are summarised by the model, with the user's requests (the latest 40) and the files changed
   listed word for word after the model's summary; the summary goes into the system message and those turns are no
   longer sent (the session keeps them); a later summary replaces it, the model reading the one before;
3. tool results of the turn in progress are shortened, oldest first;
4. the longest messages are cut to what fits.

Changes are written into the session's history (shortened results, the summary), so every later call sends the same
bytes and the model server's prompt cache keeps them. A session never fails because its history grew.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
import structlog

from codelab_agent_runtime.llm.client import LLMError
from codelab_agent_runtime.models.session import SessionState
from codelab_common.protocol.approvals import call_paths

if TYPE_CHECKING:
    from codelab_agent_runtime.core.config import Settings
    from codelab_agent_runtime.llm.client import LLMClient
    from codelab_agent_runtime.llm.models import ModelWindows

log = structlog.get_logger(__name__)

CHARS_PER_TOKEN = 3
MESSAGE_OVERHEAD = 4
"""Tokens a chat template adds around each message (role markers)."""
REPLY_RESERVE = 1024
MARGIN = 0.05
KEPT_CHARS = 300
"""What is left of a shortened tool result."""
CHANGE_TOOLS = frozenset({"write_file", "edit_file", "apply_patch", "create_directory"})
MAX_REQUESTS = 40
MAX_FILES = 60
"""The summary lists at most this many of the user's requests (the latest) and files changed."""
SUMMARY_PROMPT = (
    "You summarise the earlier part of a conversation between a user and a coding assistant, for the assistant "
    "to continue from. In at most 12 short lines: what the user wanted, what was found, what was done, what is "
    "still open. Only facts from the transcript; no advice."
)


@dataclass(slots=True)
class Fitted:
    messages: list[dict[str, Any]]
    prompt_tokens: int
    window: int
    counted_by: Literal["tokenizer", "estimate"] = "estimate"


def estimate(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> int:
    """The prompt's tokens, overcounted on purpose (see the module's docstring)."""
    chars = len(orjson.dumps(tools)) if tools else 0
    for message in messages:
        chars += _chars(message)
    return chars // CHARS_PER_TOKEN + MESSAGE_OVERHEAD * len(messages)


def _chars(message: dict[str, Any]) -> int:
    size = len(message.get("content") or "")
    for call in message.get("tool_calls") or ():
        function = call.get("function", {})
        size += len(function.get("name", "")) + len(function.get("arguments", ""))
    return size


class ContextWindow:
    def __init__(self, settings: Settings, llm: LLMClient, windows: ModelWindows) -> None:
        self._settings = settings
        self._llm = llm
        self._windows = windows

    async def fit(
        self, state: SessionState, system_prompt: str, tools: list[dict[str, Any]], model: str | None
    ) -> Fitted:
        """The messages of the next model call, within the model's window."""
        name = model or self._settings.model
        window = await self._windows.window(name) or self._settings.default_context_window
        budget = int(window * (1 - MARGIN)) - (self._settings.max_tokens or REPLY_RESERVE)
        budget = max(budget, window // 4)
        tools_tokens = estimate([], tools)
        messages = _assemble(state, system_prompt)
        estimated = estimate(messages) + tools_tokens
        if estimated <= budget:
            return Fitted(messages, estimated, window)
        exact = await self._windows.count(name, messages, tools)
        if exact is not None:
            if exact <= budget:
                return Fitted(messages, exact, window, "tokenizer")
            budget = budget * estimated // exact  # the estimate's units: what the tokenizer showed it overcounts
        room = budget - tools_tokens
        if self._shorten(state, system_prompt, range(state.summary_upto, state.turn_start), room):
            return self._fitted(state, system_prompt, tools_tokens, window)
        await self._summarise(state, name, room)
        if estimate(_assemble(state, system_prompt)) <= room:
            return self._fitted(state, system_prompt, tools_tokens, window)
        if self._shorten(state, system_prompt, range(state.turn_start, len(state.messages)), room):
            return self._fitted(state, system_prompt, tools_tokens, window)
        cap = room * CHARS_PER_TOKEN // 2
        if state.summary and len(state.summary) > cap:
            state.summary = "[…]" + state.summary[-cap:]  # the summary itself may take half the room at most
        messages = _cut_to_fit(_assemble(state, system_prompt), room)
        log.warning("context_cut", session_id=state.session_id, window=window)
        return Fitted(messages, estimate(messages) + tools_tokens, window)

    @staticmethod
    def _fitted(state: SessionState, system_prompt: str, tools_tokens: int, window: int) -> Fitted:
        messages = _assemble(state, system_prompt)
        return Fitted(messages, estimate(messages) + tools_tokens, window)

    @staticmethod
    def _shorten(state: SessionState, system_prompt: str, indexes: range, room: int) -> bool:
        """Shorten the tool results at `indexes`, oldest first, until the prompt fits `room`; whether it fits."""
        over = estimate(_assemble(state, system_prompt)) - room
        names = _call_names(state.messages)
        for index in indexes:
            if over <= 0:
                break
            message = state.messages[index]
            content = message.get("content") or ""
            if message.get("role") != "tool" or len(content) <= KEPT_CHARS * 2:
                continue
            tool = names.get(message.get("tool_call_id", ""), "the tool")
            dropped = len(content) - KEPT_CHARS
            marker = (
                f"\n[{dropped} more characters of this result were left out to fit the context window; "
                f"call {tool} again to see them]"
            )
            message["content"] = content[:KEPT_CHARS] + marker
            over -= (dropped - len(marker)) // CHARS_PER_TOKEN
        return over <= 0

    async def _summarise(self, state: SessionState, model: str, room: int) -> None:
        """Summarise the turns before the most recent ones that fit in half the room, into `state.summary`."""
        upto = _turn_starts(state)
        keep_from = state.turn_start
        for start in reversed(upto):
            if start >= state.turn_start:
                continue
            if estimate(state.messages[start:]) > room // 2:
                break
            keep_from = start
        if keep_from <= state.summary_upto:
            return
        older = state.messages[state.summary_upto : keep_from]
        prose = await self._model_summary(state, older, model, room)
        # The new summary replaces the one before (the model saw it); the facts cover every summarised turn.
        state.summary = f"{prose}\n{_facts(state.messages[:keep_from])}".strip()
        state.summary_upto = keep_from
        log.info("context_summarised", session_id=state.session_id, messages=len(older), chars=len(state.summary))

    async def _model_summary(self, state: SessionState, older: list[dict[str, Any]], model: str, room: int) -> str:
        transcript = _transcript(older)
        limit = max(1000, room * CHARS_PER_TOKEN // 2)
        if len(transcript) > limit:
            transcript = transcript[: limit // 2] + "\n[…]\n" + transcript[-limit // 2 :]
        earlier = f"Summary of what came before:\n{state.summary}\n\n" if state.summary else ""
        messages = [
            {"role": "system", "content": SUMMARY_PROMPT},
            {"role": "user", "content": f"{earlier}Transcript:\n{transcript}"},
        ]
        text: list[str] = []
        try:
            async for item in self._llm.stream(messages, [], session_id=state.session_id, model=model):
                if isinstance(item, str):
                    text.append(item)
        except LLMError as exc:
            log.warning("context_summary_failed", session_id=state.session_id, error=str(exc))
            return ""
        return "".join(text).strip()[: limit // 2]


def _assemble(state: SessionState, system_prompt: str) -> list[dict[str, Any]]:
    system = system_prompt
    if state.summary:
        system = f"{system_prompt}\n\nEarlier in this conversation (summarised):\n{state.summary}"
    return [{"role": "system", "content": system}, *state.messages[state.summary_upto :]]


def _turn_starts(state: SessionState) -> list[int]:
    """Indexes of the user messages that start turns (not the notes sent back within a turn), after the summary."""
    starts = [state.summary_upto] if state.summary_upto < len(state.messages) else []
    for index in range(state.summary_upto + 1, len(state.messages)):
        message = state.messages[index]
        if message.get("role") == "user" and state.messages[index - 1].get("role") == "assistant":
            previous = state.messages[index - 1]
            if not previous.get("tool_calls"):
                starts.append(index)
    return starts


def _call_names(messages: list[dict[str, Any]]) -> dict[str, str]:
    return {
        call["id"]: call.get("function", {}).get("name", "the tool")
        for message in messages
        for call in message.get("tool_calls") or ()
    }


def _facts(older: list[dict[str, Any]]) -> str:
    """Every request the user made and every file changed in `older`, word for word."""
    requests = []
    changed: list[str] = []
    for message in older:
        if message.get("role") == "user":
            text = str(message.get("content") or "")
            text = text.rsplit("My request:", 1)[-1].strip()
            requests.append(text[:200])
        for call in message.get("tool_calls") or ():
            function = call.get("function", {})
            if function.get("name") in CHANGE_TOOLS:
                try:
                    arguments = orjson.loads(function.get("arguments") or "{}")
                except orjson.JSONDecodeError:
                    continue
                for path in call_paths(function["name"], arguments if isinstance(arguments, dict) else {}):
                    if path not in changed:
                        changed.append(path)
    lines = ["The user's requests so far:"]
    if len(requests) > MAX_REQUESTS:
        lines.append(f"- ({len(requests) - MAX_REQUESTS} earlier requests)")
    lines += [f"- {request}" for request in requests[-MAX_REQUESTS:]]
    if changed:
        more = f" and {len(changed) - MAX_FILES} more" if len(changed) > MAX_FILES else ""
        lines.append(f"Files changed so far: {', '.join(changed[-MAX_FILES:])}{more}")
    return "\n".join(lines)


def _transcript(messages: list[dict[str, Any]]) -> str:
    lines = []
    for message in messages:
        role = message.get("role")
        content = str(message.get("content") or "")
        for call in message.get("tool_calls") or ():
            function = call.get("function", {})
            content += f"\n[called {function.get('name')} {str(function.get('arguments'))[:200]}]"
        lines.append(f"{role}: {content[:1500]}")
    return "\n".join(lines)


def _cut_to_fit(messages: list[dict[str, Any]], room: int) -> list[dict[str, Any]]:
    """Last resort: cut the longest message contents (never the system prompt's own text) until the prompt fits."""
    messages = [dict(message) for message in messages]
    while estimate(messages) > room:
        index = max(range(1, len(messages)), key=lambda i: len(messages[i].get("content") or ""), default=None)
        if index is None:
            break
        content = messages[index].get("content") or ""
        if len(content) <= KEPT_CHARS:
            break
        excess = (estimate(messages) - room) * CHARS_PER_TOKEN + 100
        keep = max(KEPT_CHARS, len(content) - excess)
        messages[index]["content"] = content[:keep] + "\n[cut to fit the context window]"
    return messages
