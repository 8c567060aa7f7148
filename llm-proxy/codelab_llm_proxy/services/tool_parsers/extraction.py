"""Apply a `ToolParser` to whole completions and to streams of chunks.

A recovered call becomes a real OpenAI tool call: id `call_<random>`, arguments as a JSON string,
`finish_reason: "tool_calls"`; the prose the model wrote before it stays the message's content. Native
`tool_calls` from the upstream pass untouched, and an answer cut off by `max_tokens` (finish_reason "length")
always stays text.
"""

from __future__ import annotations

import secrets
from typing import Any

from codelab_llm_proxy.services.tool_parsers.base import CallScanner, OfferedTools, ParsedToolCall, ToolParser

ARGUMENT_PIECE = 4096
"""Streamed arguments are split into pieces of this many characters, so no SSE line grows unbounded."""


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def extract_into_completion(answer: dict[str, Any], parser: ToolParser, offered: OfferedTools) -> None:
    """Rewrite, in place, each choice of a `chat.completion` whose text holds calls to offered tools."""
    for choice in answer.get("choices") or ():
        message = choice.get("message")
        if not isinstance(message, dict) or message.get("tool_calls") or choice.get("finish_reason") == "length":
            continue
        content = message.get("content")
        if not isinstance(content, str):
            continue
        found = parser.extract(content, offered)
        if found:
            message["content"] = content[: found.text_end].strip() or None
            message["tool_calls"] = [
                {"id": new_call_id(), "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in found.calls
            ]
            choice["finish_reason"] = "tool_calls"


class _ChoiceState:
    """One choice's answer so far, how much of it was sent, and the scanner that says how much may be."""

    __slots__ = ("done", "scanner", "sent", "text")

    def __init__(self, scanner: CallScanner) -> None:
        self.text = ""
        self.sent = 0
        self.scanner = scanner
        self.done = False
        """Native tool calls arrived or the choice finished: everything passes from now on."""

    def release(self, upto: int) -> str:
        if not self.done and not self.text[:upto].strip():
            return ""  # whitespace before a call is no prose
        piece = self.text[self.sent : upto]
        self.sent = max(self.sent, upto)
        return piece


class StreamingToolCallExtractor:
    """Per-request filter of `chat.completion.chunk` dicts (one per upstream chunk, in order).

    Text passes through at once up to the first place a call may start; from there it is held. When the choice
    finishes, the answer is parsed: calls go out as tool-call deltas (header with id, type and name, then the
    arguments) and a `tool_calls` finish, after the prose that preceded them; anything else goes out as text.
    """

    def __init__(self, parser: ToolParser, offered: OfferedTools) -> None:
        self._parser = parser
        self._offered = offered
        self._choices: dict[int, _ChoiceState] = {}

    def process(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """The chunks to send for one upstream chunk: none while text is held, several when calls come out."""
        choices = chunk.get("choices")
        if not choices:
            return [chunk]
        if len(choices) == 1:
            out = self._choice(choices[0])
            if len(out) == 1 and out[0] is choices[0]:
                return [chunk]
        else:
            out = [c for choice in choices for c in self._choice(choice)]
        usage = chunk.get("usage")
        chunks = [{**chunk, "choices": [c]} for c in out]
        if usage:
            for early in chunks[:-1]:
                early.pop("usage", None)
            if not chunks:
                chunks.append({**chunk, "choices": []})
        return chunks

    def flush(self, template: dict[str, Any]) -> list[dict[str, Any]]:
        """Held text of choices whose stream ended without a finish_reason (upstream dropped): send it as text."""
        out = []
        for index, state in self._choices.items():
            held = state.release(len(state.text))
            if held:
                choice = {"index": index, "delta": {"content": held}, "finish_reason": None}
                out.append({**template, "choices": [choice]})
        return out

    def _choice(self, choice: dict[str, Any]) -> list[dict[str, Any]]:
        index = choice.get("index", 0)
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _ChoiceState(self._parser.scanner(self._offered))
        finish = choice.get("finish_reason")
        if state.done and finish is None:
            return [choice]
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if delta.get("tool_calls"):
            state.done = True
            held = state.release(len(state.text))
            if held:
                delta["content"] = held + (content or "")
        elif content:
            state.text += content
            released = state.release(state.scanner.release_point(state.text))
            if released:
                delta["content"] = released
            else:
                delta.pop("content", None)
        if finish is None:
            return [choice] if delta or state.done else []
        found = None
        if finish != "length" and not state.done:
            found = self._parser.extract(state.text, self._offered)
        if not found:
            state.done = True
            held = state.release(len(state.text))
            if held:
                delta["content"] = (delta.get("content") or "") + held
            choice["delta"] = delta
            return [choice]
        prose = state.release(max(found.text_end, state.sent))
        state.done, state.sent = True, len(state.text)
        if prose:
            delta["content"] = (delta.get("content") or "") + prose
        delta = {key: value for key, value in delta.items() if value}
        out = [choice | {"delta": delta, "finish_reason": None}] if delta else []
        out.extend(_call_deltas(index, found.calls))
        out.append({"index": index, "delta": {}, "finish_reason": "tool_calls"})
        return out


def _call_deltas(index: int, calls: list[ParsedToolCall]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for position, call in enumerate(calls):
        head = {"index": position, "id": new_call_id(), "type": "function"}
        out.append(_delta(index, [{**head, "function": {"name": call.name, "arguments": ""}}]))
        for start in range(0, len(call.arguments), ARGUMENT_PIECE):
            piece = call.arguments[start : start + ARGUMENT_PIECE]
            out.append(_delta(index, [{"index": position, "function": {"arguments": piece}}]))
    return out


def _delta(index: int, tool_calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"index": index, "delta": {"tool_calls": tool_calls}, "finish_reason": None}
