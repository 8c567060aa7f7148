"""Streams: Anthropic SSE events ⇄ OpenAI `chat.completion.chunk`s, as two small state machines.

Each `feed` takes one already-parsed event (the caller parses once with orjson) and returns what to send on; no
pydantic, no I/O. Both keep only the few counters a stream needs (block index ↔ tool index, usage, stop reason).
"""

from __future__ import annotations

import secrets
from typing import Any

from codelab_llm_proxy.services.translation.anthropic_response import (
    anthropic_usage,
    finish_reason,
    openai_usage,
    stop_reason,
)

Body = dict[str, Any]


class AnthropicStreamError(Exception):
    """The upstream sent an in-band `error` event."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(message)
        self.type = type
        self.message = message


class AnthropicToOpenAIStream:
    """Anthropic Messages events → OpenAI chunks (the Anthropic provider).

    The role chunk comes first (at `message_start`); each `tool_use` block becomes a tool call whose `index`
    counts tool blocks only, 0-based, announced with its `id` and `name`; `input_json_delta` becomes argument
    deltas (a call with none gets `"{}"` when its block stops, as in a whole answer); `thinking_delta` becomes
    `reasoning_content` when the request opted in (else it is counted in `dropped_thinking`, so the caller can
    say so), and a thinking block's `signature_delta` (or a redacted block) becomes a `thinking_blocks` entry
    (LiteLLM's field), so the block can be sent back exactly; `message_delta` gives the finish chunk;
    `message_stop` gives the usage chunk when asked. `done` turns true at `message_stop`: a stream that ends
    before it was cut short.
    """

    def __init__(self, *, model: str, created: int, include_usage: bool, include_reasoning: bool) -> None:
        self._model = model
        self._created = created
        self._include_usage = include_usage
        self._include_reasoning = include_reasoning
        self._id = ""
        self._tools: dict[int, int] = {}
        """Anthropic content block index → OpenAI tool call index."""
        self._silent_tools: set[int] = set()
        """Tool blocks that have had no argument text yet (a call without arguments)."""
        self._usage: Body = {}
        self.dropped_thinking = 0
        self.done = False

    def feed(self, event: Body) -> list[Body]:
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "message_start":
            message = event.get("message") or {}
            self._id = message.get("id", "")
            self._usage = dict(message.get("usage") or {})
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = len(self._tools)
                self._tools[event.get("index", 0)] = index
                self._silent_tools.add(index)
                call = {"index": index, "id": block.get("id", ""), "type": "function"}
                call["function"] = {"name": block.get("name", ""), "arguments": ""}
                return [self._chunk({"tool_calls": [call]})]
            if block.get("type") == "text" and block.get("text"):
                return [self._chunk({"content": block["text"]})]
            if block.get("type") == "redacted_thinking" and self._include_reasoning:
                return [self._chunk({"thinking_blocks": [block]})]
            return []
        if kind == "content_block_stop":
            stopped = self._tools.get(event.get("index", 0))
            if stopped is None or stopped not in self._silent_tools:
                return []
            self._silent_tools.discard(stopped)
            return [self._arguments(stopped, "{}")]
        if kind == "message_delta":
            usage = event.get("usage") or {}
            self._usage.update({k: v for k, v in usage.items() if v is not None})
            reason = (event.get("delta") or {}).get("stop_reason")
            return [self._chunk({}, finish_reason(reason))]
        if kind == "message_stop":
            self.done = True
            if self._include_usage:
                return [self._base() | {"choices": [], "usage": openai_usage(self._usage)}]
            return []
        if kind == "error":
            error = event.get("error") or {}
            raise AnthropicStreamError(str(error.get("type", "api_error")), str(error.get("message", "")))
        return []  # ping, and event types added later, are ignored on purpose

    def _delta(self, event: Body) -> list[Body]:
        delta = event.get("delta") or {}
        kind = delta.get("type")
        if kind == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if kind == "input_json_delta":
            piece = delta.get("partial_json", "")
            index = self._tools.get(event.get("index", 0))
            if not piece or index is None:
                return []
            self._silent_tools.discard(index)
            return [self._arguments(index, piece)]
        if kind == "thinking_delta":
            if not self._include_reasoning:
                self.dropped_thinking += 1
                return []
            return [self._chunk({"reasoning_content": delta.get("thinking", "")})]
        if kind == "signature_delta" and self._include_reasoning:
            block = {"type": "thinking", "thinking": "", "signature": delta.get("signature", "")}
            return [self._chunk({"thinking_blocks": [block]})]
        return []  # citations_delta

    def _arguments(self, index: int, piece: str) -> Body:
        return self._chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})

    def _base(self) -> Body:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model}

    def _chunk(self, delta: Body, finish: str | None = None) -> Body:
        return self._base() | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class OpenAIToAnthropicStream:
    """OpenAI chunks → Anthropic `(event name, payload)` pairs (the `/v1/messages` ingress).

    `message_start` comes with the first chunk; `reasoning_content`, `content` and each tool call open their own
    content block (the open one is stopped first), tool arguments become `input_json_delta`s; `finish` closes the
    open block and sends `message_delta` (stop reason and usage, which OpenAI only reports at the end) and
    `message_stop`.
    """

    def __init__(self, *, model: str) -> None:
        self._model = model
        self._started = False
        self._blocks = 0
        self._open: str | None = None
        """Kind of the open content block: "thinking", "text" or "tool:<openai index>"."""
        self._tool_blocks: dict[int, int] = {}
        self._finish: str | None = None
        self._usage: Body | None = None

    def feed(self, chunk: Body) -> list[tuple[str, Body]]:
        out: list[tuple[str, Body]] = []
        if not self._started:
            self._started = True
            out.append(("message_start", self._message_start(chunk)))
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                self._open_block(out, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
                out.append(self._delta({"type": "thinking_delta", "thinking": delta["reasoning_content"]}))
            for block in delta.get("thinking_blocks") or ():
                self._thinking_block(out, block)
            if delta.get("content"):
                self._open_block(out, "text", {"type": "text", "text": ""})
                out.append(self._delta({"type": "text_delta", "text": delta["content"]}))
            for call in delta.get("tool_calls") or ():
                self._tool_delta(out, call)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def finish(self) -> list[tuple[str, Body]]:
        out: list[tuple[str, Body]] = []
        if not self._started:
            self._started = True
            out.append(("message_start", self._message_start({})))
        self._close(out)
        usage = anthropic_usage(self._usage)
        delta = {"stop_reason": stop_reason(self._finish), "stop_sequence": None}
        out.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        out.append(("message_stop", {"type": "message_stop"}))
        return out

    def _message_start(self, chunk: Body) -> Body:
        message: Body = {
            "id": chunk.get("id") or f"msg_{secrets.token_hex(12)}",
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return {"type": "message_start", "message": message}

    def _thinking_block(self, out: list[tuple[str, Body]], block: Body) -> None:
        """A signature closes the open thinking block's content; a redacted block is a block of its own."""
        if block.get("type") == "redacted_thinking":
            redacted = {"type": "redacted_thinking", "data": block.get("data", "")}
            self._open_block(out, f"redacted:{self._blocks}", redacted)
        elif block.get("signature"):
            self._open_block(out, "thinking", {"type": "thinking", "thinking": "", "signature": ""})
            out.append(self._delta({"type": "signature_delta", "signature": block["signature"]}))

    def _tool_delta(self, out: list[tuple[str, Body]], call: Body) -> None:
        index = call.get("index", 0)
        function = call.get("function") or {}
        if index not in self._tool_blocks:
            block: Body = {
                "type": "tool_use",
                "id": call.get("id") or f"toolu_{secrets.token_hex(12)}",
                "name": function.get("name") or "",
                "input": {},
            }
            self._open_block(out, f"tool:{index}", block)
            self._tool_blocks[index] = self._blocks - 1
        arguments = function.get("arguments")
        if arguments:
            delta = {"type": "input_json_delta", "partial_json": arguments}
            event = {"type": "content_block_delta", "index": self._tool_blocks[index], "delta": delta}
            out.append(("content_block_delta", event))

    def _open_block(self, out: list[tuple[str, Body]], kind: str, block: Body) -> None:
        if self._open == kind:
            return
        self._close(out)
        self._open = kind
        start = {"type": "content_block_start", "index": self._blocks, "content_block": block}
        out.append(("content_block_start", start))
        self._blocks += 1

    def _close(self, out: list[tuple[str, Body]]) -> None:
        if self._open is not None:
            out.append(("content_block_stop", {"type": "content_block_stop", "index": self._blocks - 1}))
            self._open = None

    def _delta(self, delta: Body) -> tuple[str, Body]:
        return "content_block_delta", {"type": "content_block_delta", "index": self._blocks - 1, "delta": delta}
