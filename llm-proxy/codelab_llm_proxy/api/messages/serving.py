"""Behaviour of `POST /v1/messages`: an Anthropic request answered through the chat-completions path.

The request is validated, translated to the OpenAI shape and handed to `ChatCompletionService.create`, so
routing, retries, fail-over, rate limits and metrics are the same as for `/v1/chat/completions`. Its answer is
translated back: a `chat.completion` becomes a `message`; a stream's chunks become Anthropic's event sequence
(`message_start`, `content_block_*`, `message_delta`, `message_stop`). Errors take Anthropic's shape
`{"type": "error", "error": {"type", "message", "code"}}` (`code` is the proxy's own code, so the project's
`error.message`/`error.code` still read), with the same HTTP status; after the first byte, an in-band
`event: error` and nothing more.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from fastapi.responses import Response
from pydantic import ValidationError

from codelab_common.http_errors import describe_validation_errors
from codelab_common.sse import EventStreamResponse, encode_event
from codelab_llm_proxy.api.chat_completions.serving import ChatCompletionService
from codelab_llm_proxy.api.messages.protocol import MessagesRequest
from codelab_llm_proxy.core.errors import InvalidRequest, ProxyError
from codelab_llm_proxy.core.json_body import parse_json_object
from codelab_llm_proxy.core.model_registry import ModelRegistry
from codelab_llm_proxy.services.rate_limit import Caller
from codelab_llm_proxy.services.translation.anthropic_request import anthropic_to_openai_request
from codelab_llm_proxy.services.translation.anthropic_response import (
    ANTHROPIC_ERROR_TYPES,
    anthropic_error_type,
    anthropic_message,
)
from codelab_llm_proxy.services.translation.anthropic_stream import OpenAIToAnthropicStream

_DROPPED_HEADERS = frozenset({"content-type", "content-length"})


def anthropic_error_body(message: str, status: int, code: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": anthropic_error_type(status), "message": message, "code": code}}


def _error_response(exc: ProxyError) -> Response:
    body = orjson.dumps(anthropic_error_body(exc.message, exc.status, exc.code))
    return Response(body, status_code=exc.status, media_type="application/json", headers=exc.headers())


class MessagesService:
    def __init__(self, chat: ChatCompletionService, registry: ModelRegistry) -> None:
        self._chat = chat
        self._registry = registry

    async def create(
        self, raw_body: bytes, disconnected: Callable[[], Awaitable[object]], caller: Caller | None = None
    ) -> Response:
        try:
            body = self._validate(raw_body)
            request = anthropic_to_openai_request(body, keep_thinking=self._thinking_understood(body["model"]))
            response = await self._chat.create(orjson.dumps(request), disconnected, caller)
        except ProxyError as exc:
            return _error_response(exc)
        headers = {k: v for k, v in response.headers.items() if k not in _DROPPED_HEADERS}
        if isinstance(response, EventStreamResponse):
            events = _translate_stream(response.body_iterator, body["model"])
            return EventStreamResponse(events, keep_alive_s=response.keep_alive_s, headers=headers)
        if response.status_code != 200:
            return response
        message = anthropic_message(orjson.loads(response.body), model=body["model"])
        return Response(orjson.dumps(message), media_type="application/json", headers=headers)

    def _thinking_understood(self, name: str) -> bool:
        """Only Anthropic upstreams take the `thinking` opt-in; others would reject an unknown key."""
        model = self._registry.get(name)
        return model is not None and any(d.provider == "anthropic" for d in model.resolved_deployments())

    @staticmethod
    def _validate(raw_body: bytes) -> dict[str, Any]:
        body = parse_json_object(raw_body)
        try:
            MessagesRequest.model_validate(body)
        except ValidationError as exc:
            raise InvalidRequest(describe_validation_errors(exc.errors())) from None
        return body


async def _translate_stream(sse: AsyncIterable[Any], model: str) -> AsyncIterator[bytes]:
    """The chat-completions SSE bytes → Anthropic events; one orjson parse per chunk."""
    translator = OpenAIToAnthropicStream(model=model)
    buffer = b""
    try:
        async for piece in sse:
            buffer += piece if isinstance(piece, bytes) else str(piece).encode()
            *events, buffer = buffer.split(b"\n\n")
            out: list[bytes] = []
            for raw in events:
                if not raw.startswith(b"data: "):
                    if raw.startswith(b":"):
                        out.append(raw + b"\n\n")  # a keep-alive comment (Anthropic's SDK skips comments too)
                    continue
                data = raw[6:]
                if data == b"[DONE]":
                    out.extend(encode_event(orjson.dumps(p), name) for name, p in translator.finish())
                    yield b"".join(out)
                    return
                chunk = orjson.loads(data)
                if "error" in chunk and "choices" not in chunk:
                    yield b"".join(out) + _in_band_error(chunk["error"])
                    return
                out.extend(encode_event(orjson.dumps(p), name) for name, p in translator.feed(chunk))
            if out:
                yield b"".join(out)
        yield _in_band_error({"message": "the answer ended unexpectedly", "code": "upstream_error"})
    finally:
        close = getattr(sse, "aclose", None)
        if close is not None:
            await close()


def _in_band_error(error: dict[str, Any]) -> bytes:
    """Anthropic's `event: error`; an Anthropic upstream's own error type (e.g. `overloaded_error`) is kept."""
    kind = error.get("type")
    detail = {"type": kind if kind in ANTHROPIC_ERROR_TYPES else "api_error", "message": str(error.get("message", ""))}
    if error.get("code"):
        detail["code"] = str(error["code"])
    body = {"type": "error", "error": detail}
    return encode_event(orjson.dumps(body), "error")
