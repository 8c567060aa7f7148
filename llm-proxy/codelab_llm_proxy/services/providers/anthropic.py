"""Anthropic's Messages API (`POST {base_url}/v1/messages`, `x-api-key`, `anthropic-version`).

The proxy speaks OpenAI's shapes inside, so this provider translates the request on the way out and the answer
(or each streamed event, parsed once with orjson) on the way back, using `services.translation`. HTTP failures
map to the same typed errors as the OpenAI-compatible provider; an in-band `error` event, or a stream that ends
before `message_stop`, raises `UpstreamError` so the client gets an in-band error rather than a short answer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson
import structlog

from codelab_llm_proxy.core.errors import UpstreamError
from codelab_llm_proxy.core.model_registry import ModelConfig
from codelab_llm_proxy.services.providers import upstream_http
from codelab_llm_proxy.services.providers.base import ChatBody, register_provider
from codelab_llm_proxy.services.translation.anthropic_request import openai_to_anthropic_request, thinking_requested
from codelab_llm_proxy.services.translation.anthropic_response import ANTHROPIC_ERROR_TYPES, openai_completion
from codelab_llm_proxy.services.translation.anthropic_stream import AnthropicStreamError, AnthropicToOpenAIStream

log = structlog.get_logger(__name__)

ANTHROPIC_VERSION = "2023-06-01"


@register_provider("anthropic")
class AnthropicProvider:
    def __init__(self, model: ModelConfig, session: aiohttp.ClientSession) -> None:
        self._model = model
        self._session = session
        self._url = f"{model.base_url}/v1/messages"
        self._timeout = upstream_http.client_timeout(model)
        self._who = upstream_http.who(model)

    def _headers(self, stream: bool) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
        }
        key = self._model.api_key()
        if key:
            headers["x-api-key"] = key
        return headers

    def _request(self, body: ChatBody) -> bytes:
        request = openai_to_anthropic_request(body, default_max_tokens=self._model.max_output_tokens)
        return orjson.dumps(request)

    async def complete(self, body: ChatBody) -> dict[str, Any]:
        payload = await upstream_http.post(
            self._session, self._model, self._url, self._request(body), self._headers(False), self._timeout
        )
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"model server for {self._who} answered with invalid JSON") from None
        if isinstance(message, dict) and message.get("type") == "error":
            raise self._error(message.get("error"), "in its answer")
        if not isinstance(message, dict) or message.get("type") != "message":
            raise UpstreamError(f"model server for {self._who} sent no message")
        return openai_completion(
            message, model=body["model"], created=int(time.time()), include_reasoning=thinking_requested(body)
        )

    async def stream(self, body: ChatBody) -> AsyncGenerator[dict[str, Any], None]:
        data = self._request({**body, "stream": True})
        translator = AnthropicToOpenAIStream(
            model=body["model"],
            created=int(time.time()),
            include_usage=bool((body.get("stream_options") or {}).get("include_usage")),
            include_reasoning=thinking_requested(body),
        )
        try:
            async with upstream_http.open_stream(
                self._session, self._model, self._url, data, self._headers(True), self._timeout
            ) as lines:
                async for line in lines:
                    if not line.startswith(b"data:"):
                        continue  # `event:` lines repeat the payload's `type`; blank lines end events
                    try:
                        event = orjson.loads(line[5:])
                    except orjson.JSONDecodeError:
                        raise UpstreamError(f"model server for {self._who} sent an invalid stream event") from None
                    for chunk in translator.feed(event):
                        yield chunk
                    if translator.done:
                        break
        except AnthropicStreamError as exc:
            raise self._error({"type": exc.type, "message": exc.message}, "mid-stream") from None
        finally:
            if translator.dropped_thinking:
                log.info("thinking_dropped", model=self._model.name, deltas=translator.dropped_thinking)
        if not translator.done:
            raise UpstreamError(f"model server for {self._who} ended the stream before message_stop")

    def _error(self, error: Any, where: str) -> UpstreamError:
        """An in-band error; Anthropic's own error types (e.g. `overloaded_error`) are kept for the client."""
        failure = upstream_http.answer_error(self._model, error, where)
        if failure.upstream_type in ANTHROPIC_ERROR_TYPES:
            failure.type = failure.upstream_type
        return failure
