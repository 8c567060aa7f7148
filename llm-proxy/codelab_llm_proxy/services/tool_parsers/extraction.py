"""Apply a `ToolParser` to whole completions and to streams of chunks.

A recovered call becomes a real OpenAI tool call: id `call_<random>`, arguments as a JSON string,
`finish_reason: "tool_calls"`, message content None. Native `tool_calls` from the upstream pass untouched, and
an answer cut off by `max_tokens` (finish_reason "length") always stays text.
"""

from __future__ import annotations

import secrets
from typing import Any

from codelab_llm_proxy.services.tool_parsers.base import ParsedToolCall, ToolParser

ARGUMENT_PIECE = 4096
"""Streamed arguments are split into pieces of this many characters, so no SSE line grows unbounded."""


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


def extract_into_completion(answer: dict[str, Any], parser: ToolParser, offered: frozenset[str]) -> None:
    """Rewrite, in place, each choice of a `chat.completion` whose text is a call to an offered tool."""
    for choice in answer.get("choices") or ():
        message = choice.get("message")
        if not isinstance(message, dict) or message.get("tool_calls") or choice.get("finish_reason") == "length":
            continue
        content = message.get("content")
        if not isinstance(content, str):
            continue
        calls = parser.extract(content, offered)
        if calls:
            message["content"] = None
            message["tool_calls"] = [
                {"id": new_call_id(), "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in calls
            ]
            choice["finish_reason"] = "tool_calls"


class _ChoiceState:
    """Hold-back state of one choice: `held` text while it may still be a call; `passing` once it cannot."""

    __slots__ = ("held", "passing", "settled_call")

    def __init__(self) -> None:
        self.held: list[str] = []
        self.passing = False
        self.settled_call = False


class StreamingToolCallExtractor:
    """Per-request filter of `chat.completion.chunk` dicts (one per upstream chunk, in order).

    Text passes through at once unless the answer so far could still be a call; then it is held. When the
    choice finishes, held text is parsed: calls go out as tool-call deltas (header with id, type and name,
    then the arguments) and a `tool_calls` finish; anything else goes out as the text it was.
    """

    def __init__(self, parser: ToolParser, offered: frozenset[str]) -> None:
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
            if state.held and not state.passing:
                text = "".join(state.held)
                state.held.clear()
                choice = {"index": index, "delta": {"content": text}, "finish_reason": None}
                out.append({**template, "choices": [choice]})
        return out

    def _choice(self, choice: dict[str, Any]) -> list[dict[str, Any]]:
        index = choice.get("index", 0)
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _ChoiceState()
        finish = choice.get("finish_reason")
        if state.passing and finish is None:
            return [choice]
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if delta.get("tool_calls"):
            held = self._release(state)
            if held:
                delta["content"] = held + (content or "")
        elif content and not state.passing:
            released = self._feed(state, content)
            if released:
                delta["content"] = released
            else:
                delta.pop("content", None)
        if finish is None:
            return [choice] if delta or state.passing else []
        calls = None
        if finish != "length" and not state.passing:
            calls = self._parser.extract("".join(state.held), self._offered)
        if not calls:
            held = self._release(state)
            if held:
                delta["content"] = (delta.get("content") or "") + held
            choice["delta"] = delta
            return [choice]
        state.held.clear()
        state.passing = True
        out = [choice | {"delta": delta, "finish_reason": None}] if delta else []
        out.extend(_call_deltas(index, calls))
        out.append({"index": index, "delta": {}, "finish_reason": "tool_calls"})
        return out

    def _feed(self, state: _ChoiceState, content: str) -> str:
        state.held.append(content)
        if state.settled_call:
            return ""
        kind = self._parser.classify_prefix("".join(state.held))
        if kind == "call":
            state.settled_call = True
            return ""
        if kind == "undecided":
            return ""
        return self._release(state)

    @staticmethod
    def _release(state: _ChoiceState) -> str:
        state.passing = True
        text = "".join(state.held)
        state.held.clear()
        return text


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
