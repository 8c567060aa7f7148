"""Streaming chat completions from llm-proxy: the reply's text deltas as they come, then the whole reply.

This is the hot path: one orjson parse per streamed chunk, plain dicts, no per-chunk logging. Each call is a client
span (when the step is traced) whose `traceparent` goes to llm-proxy, and its time to the first token is measured.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import structlog
from aiohttp.http_exceptions import HttpProcessingError
from opentelemetry.trace import SpanKind

from codelab_agent_runtime.core.metrics import AgentMetrics
from codelab_common import tracing
from codelab_common.auth import INTERNAL_AUTH_HEADER
from codelab_common.request_id import SESSION_ID_HEADER
from codelab_common.sse import LineTooLong, iter_sse

MAX_LINE_BYTES = 1 << 22
"""The longest SSE line taken from llm-proxy: a tool call's arguments (a whole file) may arrive in one."""

log = structlog.get_logger(__name__)


class LLMError(Exception):
    """llm-proxy could not produce a reply: refused connection, non-200 answer, in-band error, cut stream."""


@dataclass(slots=True)
class ToolCallDraft:
    """One tool call as its streamed deltas arrive (joined by their `index`)."""

    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ModelReply:
    """What one model call produced: its whole text, its tool calls and why it stopped."""

    text: list[str] = field(default_factory=list)
    drafts: dict[int, ToolCallDraft] = field(default_factory=dict)
    finish_reason: str | None = None

    @property
    def content(self) -> str:
        return "".join(self.text)

    def tool_calls(self) -> list[ToolCallDraft]:
        return [self.drafts[index] for index in sorted(self.drafts)]


class LLMClient:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        base_url: str,
        api_key: str,
        model: str,
        metrics: AgentMetrics,
        options: dict[str, Any] | None = None,
    ) -> None:
        self._http = http
        self._metrics = metrics
        self._url = f"{base_url.rstrip('/')}/v1/chat/completions"
        self._headers = {INTERNAL_AUTH_HEADER: api_key, "Content-Type": "application/json"}
        self._model = model
        self._options = options or {}

    async def stream(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        tool_choice: str | None = None,
        session_id: str | None = None,
        model: str | None = None,
    ) -> AsyncIterator[str | ModelReply]:
        """Yield the reply's text deltas (`str`) as they arrive, then the whole `ModelReply` last. `session_id` goes to
        llm-proxy as `X-Session-ID`, for its log lines."""
        reply = ModelReply()
        body: dict[str, Any] = {"model": model or self._model, "messages": messages, "stream": True, **self._options}
        if tools:
            body["tools"] = tools
            if tool_choice:
                body["tool_choice"] = tool_choice
        span = tracing.start_span(
            f"chat {self._model}",
            kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": self._model},
        )
        headers = {**self._headers, **tracing.trace_headers(span)} if span is not None else dict(self._headers)
        if session_id is not None:
            headers[SESSION_ID_HEADER] = session_id
        started = time.perf_counter()
        waiting = True
        finished = False
        with tracing.ending(span):
            try:
                async with self._http.post(self._url, data=orjson.dumps(body), headers=headers) as response:
                    if response.status != 200:
                        raise LLMError(await _describe_failure(response))
                    async for event in iter_sse(response.content.iter_any(), max_line=MAX_LINE_BYTES):
                        if event.data == "[DONE]":
                            finished = True
                            break
                        chunk = _parse(event.data)
                        if event.event == "error" or "error" in chunk:
                            raise LLMError(f"model failed: {_error_message(chunk)}")
                        for choice in chunk.get("choices") or ():
                            delta = choice.get("delta") or {}
                            text = delta.get("content")
                            if waiting and (text or delta.get("tool_calls")):
                                waiting = False
                                self._metrics.time_to_first_token.observe(time.perf_counter() - started)
                            if text:
                                reply.text.append(text)
                                yield text
                            if delta.get("tool_calls"):
                                _accumulate(reply.drafts, delta["tool_calls"])
                            if choice.get("finish_reason"):
                                reply.finish_reason = choice["finish_reason"]
            except TimeoutError as exc:
                raise LLMError("llm-proxy did not answer in time") from exc
            except aiohttp.ClientConnectionError as exc:
                # The client is told what failed; where llm-proxy lives is the operator's to see, in this log.
                log.warning("llm_proxy_unreachable", url=self._url, error=str(exc))
                raise LLMError(f"llm-proxy is unreachable ({type(exc).__name__})") from exc
            except aiohttp.ClientError as exc:
                log.warning("llm_proxy_request_failed", url=self._url, error=str(exc))
                raise LLMError(f"llm-proxy request failed ({type(exc).__name__})") from exc
            except (HttpProcessingError, LineTooLong) as exc:
                raise LLMError(f"llm-proxy sent an unreadable stream: {exc}") from exc
            if not finished and reply.finish_reason is None:
                raise LLMError("the model's stream ended before the reply was complete")
            tracing.note(span, {"gen_ai.response.finish_reasons": [reply.finish_reason or "stop"]})
        yield reply


def _parse(data: str) -> dict[str, Any]:
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise LLMError(f"llm-proxy sent a malformed chunk: {data[:200]!r}") from exc
    if not isinstance(chunk, dict):
        raise LLMError(f"llm-proxy sent a malformed chunk: {data[:200]!r}")
    return chunk


def _accumulate(drafts: dict[int, ToolCallDraft], deltas: list[dict[str, Any]]) -> None:
    for position, delta in enumerate(deltas):
        index = delta.get("index", position)
        draft = drafts.get(index)
        if draft is None:
            draft = drafts[index] = ToolCallDraft()
        if delta.get("id"):
            draft.id = delta["id"]
        function = delta.get("function") or {}
        if function.get("name"):
            draft.name += function["name"]
        if function.get("arguments"):
            draft.arguments.append(function["arguments"])


def _error_message(body: Any) -> str:
    """The message of an `{"error": {"message": ...}}` envelope, or the body itself, shortened."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:500]
    if isinstance(error, str) and error:
        return error[:500]
    return str(body)[:500]


async def _describe_failure(response: aiohttp.ClientResponse) -> str:
    raw = await response.read()
    try:
        message = _error_message(orjson.loads(raw))
    except orjson.JSONDecodeError:
        message = raw.decode(errors="replace")[:500] or response.reason or "no body"
    return f"llm-proxy answered {response.status}: {message}"


def client_timeout(connect_s: float, read_s: float) -> aiohttp.ClientTimeout:
    """No total limit (a long answer may stream for minutes); only silence is an error."""
    return aiohttp.ClientTimeout(total=None, sock_connect=connect_s, sock_read=read_s)
