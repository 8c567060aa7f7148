"""Servers that already speak OpenAI's `/v1/chat/completions`: OpenAI, vLLM, Ollama, llama.cpp, LM Studio, LiteLLM.

Bodies pass through unchanged (the serving layer has set `model`); streamed events are parsed once each with
orjson and handed on as dicts. Failures become typed `UpstreamError`s: connect errors and 5xx → 502, silence
longer than the model's read timeout → 504, other 4xx keep their status and the upstream's message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import aiohttp
import orjson

from codelab_llm_proxy.core.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from codelab_llm_proxy.core.model_registry import ModelConfig
from codelab_llm_proxy.services.providers.base import ChatBody, register_provider
from codelab_llm_proxy.services.routing.retry import parse_retry_after

_DONE = b"[DONE]"


@register_provider("openai-compatible", "openai", "vllm", "ollama", "llama.cpp", "lmstudio", "litellm")
class OpenAICompatibleProvider:
    def __init__(self, model: ModelConfig, session: aiohttp.ClientSession) -> None:
        self._model = model
        self._session = session
        self._url = f"{model.base_url}/chat/completions"
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=model.connect_timeout_s,
            sock_connect=model.connect_timeout_s,
            # The router enforces a first-token limit longer than the idle one (and then the idle one itself).
            sock_read=max(model.read_timeout_s, model.first_token_timeout_s or 0),
        )

    def _headers(self, stream: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        key = self._model.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def complete(self, body: ChatBody) -> dict[str, Any]:
        try:
            async with self._session.post(
                self._url, data=orjson.dumps(body), headers=self._headers(False), timeout=self._timeout
            ) as response:
                payload = await response.read()
                if response.status != 200:
                    raise _status_error(self._model, response.status, payload, response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _transport_error(self._model, exc) from exc
        try:
            answer = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"model server for {self._model.name!r} answered with invalid JSON") from None
        if not isinstance(answer, dict) or "error" in answer:
            raise UpstreamError(_error_message(answer) or f"model server for {self._model.name!r} sent no completion")
        return answer

    async def stream(self, body: ChatBody) -> AsyncGenerator[dict[str, Any], None]:
        try:
            async with self._session.post(
                self._url, data=orjson.dumps(body), headers=self._headers(True), timeout=self._timeout
            ) as response:
                if response.status != 200:
                    raise _status_error(self._model, response.status, await response.read(), response.headers)
                async for line in response.content:
                    if not line.startswith(b"data:"):
                        continue
                    data = line[5:].strip()
                    if data == _DONE:
                        return
                    try:
                        event = orjson.loads(data)
                    except orjson.JSONDecodeError:
                        raise UpstreamError(
                            f"model server for {self._model.name!r} sent an invalid stream event"
                        ) from None
                    if "error" in event:
                        raise UpstreamError(_error_message(event) or "model server failed mid-stream")
                    yield event
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if isinstance(exc, UpstreamError):
                raise
            raise _transport_error(self._model, exc) from exc


def _transport_error(model: ModelConfig, exc: BaseException) -> UpstreamError:
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return UpstreamTimeout(f"model server for {model.name!r} did not answer within {model.read_timeout_s:g} s")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(f"cannot reach the model server for {model.name!r} at {model.base_url}")
    return UpstreamError(f"model server for {model.name!r} failed: {type(exc).__name__}: {exc}")


def _status_error(
    model: ModelConfig, status: int, payload: bytes, headers: Mapping[str, str] | None = None
) -> UpstreamError:
    """The typed error for an upstream's non-200 answer, carrying its `Retry-After` (for the router) if given."""
    error = _status_error_of(model, status, payload)
    if headers is not None:
        error.retry_after = parse_retry_after(headers.get("Retry-After"))
    return error


def _status_error_of(model: ModelConfig, status: int, payload: bytes) -> UpstreamError:
    try:
        message = _error_message(orjson.loads(payload))
    except orjson.JSONDecodeError:
        message = payload[:500].decode(errors="replace").strip()
    message = message or f"HTTP {status}"
    if status in (401, 403):
        error = UpstreamError(f"model server for {model.name!r} rejected the proxy's credentials: {message}")
        error.retryable = False
        return error
    if 400 <= status < 500:
        return UpstreamRejected(message, status=status)
    return UpstreamError(f"model server for {model.name!r} failed with HTTP {status}: {message}")


def _error_message(answer: Any) -> str:
    if not isinstance(answer, dict):
        return ""
    error = answer.get("error", answer.get("detail"))
    if isinstance(error, dict):
        return str(error.get("message") or "")
    return str(error or "")
