"""A scripted OpenAI-compatible upstream that speaks the exact wire format of `/v1/chat/completions`.

Tests queue replies (`reply_text`, `reply_tool_calls`, `reply_error`); each request takes the next one and
is recorded in `requests`. Streaming answers are sent as `chat.completion.chunk` events ending in `[DONE]`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from codelab_common.testing.replay import replay_response


@dataclass
class ScriptedReply:
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    error_message: str = ""
    chunk_delay: float = 0.0
    chunk_size: int = 4
    delay: float = 0.0
    """Seconds to wait before answering at all (status line included): a slow or hung upstream."""
    raw: bytes | None = None
    """A recorded response body sent verbatim with `status` (SSE text event by event), whatever was asked."""
    repeat: bool = False
    """Stay queued and answer every later request too (e.g. the proxy's retries)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers (e.g. `Retry-After` on an error)."""


class FakeOpenAI:
    def __init__(self, model: str = "fake-model") -> None:
        self.model = model
        self.base_url = ""
        """Set by whoever serves `app`: the URL ending in `/v1`."""
        self.replies: deque[ScriptedReply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.request_meta: list[dict[str, Any]] = []
        """Per request, in step with `requests`: its `path`, `query` (dict) and `headers` (dict, lower-case names)."""
        self.streams_cut = 0
        """Streamed answers that ended before their last event because the client (the proxy) went away."""
        self.responder: Callable[[dict[str, Any]], ScriptedReply | None] | None = None
        """Asked first for every request: a reply of its own (e.g. for a kind of request a test cannot schedule), or
        None to take the next queued one."""
        self.context_tokens: int | None = None
        """When set, a request whose prompt is longer (counted as a tokenizer would, about 4 characters a token) is
        refused as llama.cpp's server refuses it: 400 `exceed_context_size_error`, before any reply is taken."""
        self.refused_for_length = 0
        self.tokenized = 0
        """Prompts rendered with the chat template (`/apply-template`), the first half of a count."""
        self.closed_early: list[float] = []
        """`time.monotonic()` of each request the client closed before its answer ended: during the reply's `delay`
        (before the status line) or in the middle of a stream."""
        self._ids = itertools.count(1)
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                # Azure OpenAI's shape of the same endpoint (`?api-version=` lands in `request_meta`).
                Route("/openai/deployments/{deployment}/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                # llama.cpp's server: its chat template and its tokenizer (4 characters a token here).
                Route("/apply-template", self._apply_template, methods=["POST"]),
                Route("/tokenize", self._tokenize, methods=["POST"]),
            ]
        )

    def reply_text(self, text: str, **options: Any) -> None:
        self.replies.append(ScriptedReply(text=text, **options))

    def reply_tool_calls(self, *calls: tuple[str, dict[str, Any]], text: str = "") -> None:
        """Queue an answer calling tools: each call is `(name, arguments)`."""
        self.replies.append(
            ScriptedReply(
                text=text,
                tool_calls=[
                    {"id": f"call_{next(self._ids)}", "name": name, "arguments": orjson.dumps(args).decode()}
                    for name, args in calls
                ],
            )
        )

    def reply_error(
        self, status: int, message: str = "upstream failure", *, headers: dict[str, str] | None = None
    ) -> None:
        self.replies.append(ScriptedReply(status=status, error_message=message, headers=headers or {}))

    def replay(self, raw: bytes, *, status: int = 200, repeat: bool = False) -> None:
        """Queue a recorded raw response (JSON body or SSE text), sent byte for byte."""
        self.replies.append(ScriptedReply(raw=raw, status=status, repeat=repeat))

    async def _models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "fake"}]})

    async def _apply_template(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.tokenized += 1
        parts = [orjson.dumps(body.get("tools") or []).decode()]
        parts += [
            f"<|{m.get('role')}|>{m.get('content') or ''}{orjson.dumps(m.get('tool_calls') or []).decode()}"
            for m in body["messages"]
        ]
        return JSONResponse({"prompt": "".join(parts)})

    @staticmethod
    async def _tokenize(request: Request) -> Response:
        content = str(orjson.loads(await request.body()).get("content") or "")
        return JSONResponse({"tokens": list(range(len(content) // 4))})

    async def _chat(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        self.requests.append(body)
        self.request_meta.append(
            {"path": request.url.path, "query": dict(request.query_params), "headers": dict(request.headers)}
        )
        prompt_tokens = prompt_size(body) // 4
        if self.context_tokens is not None and prompt_tokens > self.context_tokens:
            self.refused_for_length += 1
            message = "the request exceeds the available context size, try increasing it"
            error = {"code": 400, "message": message, "type": "exceed_context_size_error"}
            error |= {"n_prompt_tokens": prompt_tokens, "n_ctx": self.context_tokens}
            return JSONResponse({"error": error}, status_code=400)
        reply = (self.responder(body) if self.responder is not None else None) or self._next_reply()
        if reply.delay and not await self._wait(reply.delay, request):
            self.closed_early.append(time.monotonic())
            return Response(status_code=499)
        if reply.raw is not None:
            return replay_response(reply.raw, reply.status)
        if reply.status != 200:
            return JSONResponse(
                {"error": {"message": reply.error_message, "type": "server_error", "code": None}},
                status_code=reply.status,
                headers=reply.headers,
            )
        if body.get("stream"):
            return StreamingResponse(self._stream(reply, body), media_type="text/event-stream")
        return JSONResponse(self._completion(reply))

    @staticmethod
    async def _wait(seconds: float, request: Request) -> bool:
        """Sleep `seconds`; False as soon as the client disconnects instead."""

        async def disconnected() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass

        watcher = asyncio.ensure_future(disconnected())
        try:
            await asyncio.wait((watcher,), timeout=seconds)
        finally:
            watcher.cancel()
        return not (watcher.done() and not watcher.cancelled())

    def _next_reply(self) -> ScriptedReply:
        if not self.replies:
            return ScriptedReply(text="(no scripted reply)")
        return self.replies[0] if self.replies[0].repeat else self.replies.popleft()

    def _completion(self, reply: ScriptedReply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for c in reply.tool_calls
            ]
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if reply.tool_calls else "stop"}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    async def _stream(self, reply: ScriptedReply, body: dict[str, Any]) -> Any:
        finished = False
        try:
            async for event in self._events(reply, body):
                yield event
            finished = True
        finally:
            if not finished:
                self.streams_cut += 1
                self.closed_early.append(time.monotonic())

    async def _events(self, reply: ScriptedReply, body: dict[str, Any]) -> Any:
        base = {"id": f"chatcmpl-{next(self._ids)}", "object": "chat.completion.chunk", "created": int(time.time())}
        base["model"] = self.model

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            event = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return b"data: " + orjson.dumps(event) + b"\n\n"

        yield chunk({"role": "assistant", "content": ""})
        text = reply.text
        for start in range(0, len(text), reply.chunk_size):
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            yield chunk({"content": text[start : start + reply.chunk_size]})
        for index, call in enumerate(reply.tool_calls):
            head = {"index": index, "id": call["id"], "type": "function"}
            yield chunk({"tool_calls": [{**head, "function": {"name": call["name"], "arguments": ""}}]})
            arguments = call["arguments"]
            for start in range(0, len(arguments), 7):
                piece = arguments[start : start + 7]
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            yield b"data: " + orjson.dumps({**base, "choices": [], "usage": usage}) + b"\n\n"
        yield b"data: [DONE]\n\n"


def prompt_size(body: dict[str, Any]) -> int:
    """Characters of a chat request's prompt: every message's text and tool calls, and the tool definitions."""
    size = len(orjson.dumps(body.get("tools") or []))
    for message in body.get("messages") or []:
        content = message.get("content")
        size += len(content if isinstance(content, str) else orjson.dumps(content or ""))
        size += len(orjson.dumps(message.get("tool_calls") or []))
    return size
