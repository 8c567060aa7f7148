"""A scripted Anthropic upstream that speaks the exact wire format of `POST /v1/messages`.

Like `FakeOpenAI`: tests queue replies (`reply_text`, `reply_tool_use`, `reply_error`, or `replay` of a recorded
raw body), each request takes the next one and is recorded in `requests` (its headers in `headers`). Streamed
answers are Anthropic's SSE events, each with its `event:` line, from `message_start` to `message_stop`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from codelab_common.testing.replay import replay_response

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error"}


@dataclass
class AnthropicReply:
    text: str = ""
    tool_uses: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    error_type: str = ""
    error_message: str = ""
    raw: bytes | None = None
    """A recorded response body sent verbatim with `status` (SSE text event by event), whatever was asked."""
    repeat: bool = False
    """Stay queued and answer every later request too (e.g. the proxy's retries)."""
    chunk_size: int = 4
    chunk_delay: float = 0.0
    delay: float = 0.0
    """Seconds to wait before answering at all (status line included): a slow or hung upstream."""


class FakeAnthropic:
    def __init__(self, model: str = "fake-claude") -> None:
        self.model = model
        self.base_url = ""
        """Set by whoever serves `app`: the server root (the provider appends `/v1/messages`)."""
        self.replies: deque[AnthropicReply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    def reply_text(self, text: str, **options: Any) -> None:
        self.replies.append(AnthropicReply(text=text, **options))

    def reply_tool_use(self, *calls: tuple[str, dict[str, Any]], text: str = "") -> None:
        """Queue an answer calling tools: each call is `(name, input)`."""
        uses = [{"id": f"toolu_{next(self._ids):02d}", "name": name, "input": args} for name, args in calls]
        self.replies.append(AnthropicReply(text=text, tool_uses=uses))

    def reply_error(self, status: int, message: str = "upstream failure", error_type: str = "") -> None:
        kind = error_type or ERROR_TYPES.get(status, "overloaded_error" if status == 529 else "api_error")
        self.replies.append(AnthropicReply(status=status, error_type=kind, error_message=message))

    def replay(self, raw: bytes, *, status: int = 200, repeat: bool = False) -> None:
        """Queue a recorded raw response (JSON body or SSE text), sent byte for byte."""
        self.replies.append(AnthropicReply(raw=raw, status=status, repeat=repeat))

    async def _messages(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        reply = self._next_reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.raw is not None:
            return replay_response(reply.raw, reply.status)
        if reply.status != 200:
            error = {"type": reply.error_type, "message": reply.error_message}
            return JSONResponse({"type": "error", "error": error}, status_code=reply.status)
        if body.get("stream"):
            return StreamingResponse(self._stream(reply), media_type="text/event-stream")
        return JSONResponse(self._message(reply))

    def _next_reply(self) -> AnthropicReply:
        if not self.replies:
            return AnthropicReply(text="(no scripted reply)")
        return self.replies[0] if self.replies[0].repeat else self.replies.popleft()

    def _message(self, reply: AnthropicReply) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        content.extend({"type": "tool_use", **use} for use in reply.tool_uses)
        return {
            "id": f"msg_{next(self._ids):02d}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": "tool_use" if reply.tool_uses else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }

    async def _stream(self, reply: AnthropicReply) -> AsyncIterator[bytes]:
        def event(payload: dict[str, Any]) -> bytes:
            return b"event: " + payload["type"].encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"

        message = self._message(reply) | {"content": [], "stop_reason": None}
        message["usage"] = {"input_tokens": 10, "output_tokens": 1}
        yield event({"type": "message_start", "message": message})
        yield event({"type": "ping"})
        index = 0
        if reply.text:
            yield event({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            for start in range(0, len(reply.text), reply.chunk_size):
                if reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
                delta = {"type": "text_delta", "text": reply.text[start : start + reply.chunk_size]}
                yield event({"type": "content_block_delta", "index": 0, "delta": delta})
            yield event({"type": "content_block_stop", "index": 0})
            index = 1
        for use in reply.tool_uses:
            block = {"type": "tool_use", "id": use["id"], "name": use["name"], "input": {}}
            yield event({"type": "content_block_start", "index": index, "content_block": block})
            arguments = orjson.dumps(use["input"]).decode()
            for start in range(0, len(arguments), 7):
                delta = {"type": "input_json_delta", "partial_json": arguments[start : start + 7]}
                yield event({"type": "content_block_delta", "index": index, "delta": delta})
            yield event({"type": "content_block_stop", "index": index})
            index += 1
        stop = "tool_use" if reply.tool_uses else "end_turn"
        ending: dict[str, Any] = {"stop_reason": stop, "stop_sequence": None}
        yield event({"type": "message_delta", "delta": ending, "usage": {"output_tokens": 5}})
        yield event({"type": "message_stop"})
