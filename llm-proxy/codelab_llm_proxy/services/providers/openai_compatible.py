"""Servers that already speak OpenAI's `/v1/chat/completions`: OpenAI, vLLM, Ollama, llama.cpp, LM Studio, LiteLLM.

Bodies pass through unchanged (the serving layer has set `model`); streamed events are parsed once each with
orjson and handed on as dicts. HTTP failures become typed errors (`upstream_http`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
import orjson

from codelab_llm_proxy.core.errors import UpstreamError
from codelab_llm_proxy.core.model_registry import ModelConfig
from codelab_llm_proxy.services.providers import upstream_http
from codelab_llm_proxy.services.providers.base import ChatBody, register_provider

_DONE = b"[DONE]"


@register_provider("openai-compatible", "openai", "vllm", "ollama", "llama.cpp", "lmstudio", "litellm")
class OpenAICompatibleProvider:
    def __init__(self, model: ModelConfig, session: aiohttp.ClientSession) -> None:
        self._model = model
        self._session = session
        self._url = f"{model.base_url}/chat/completions"
        self._timeout = upstream_http.client_timeout(model)
        self._who = upstream_http.who(model)

    def _headers(self, stream: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream" if stream else "application/json"}
        key = self._model.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    async def complete(self, body: ChatBody) -> dict[str, Any]:
        data = orjson.dumps(body)
        payload = await upstream_http.post(
            self._session, self._model, self._url, data, self._headers(False), self._timeout
        )
        try:
            answer = orjson.loads(payload)
        except orjson.JSONDecodeError:
            raise UpstreamError(f"model server for {self._who} answered with invalid JSON") from None
        if not isinstance(answer, dict):
            raise UpstreamError(f"model server for {self._who} sent no completion")
        if "error" in answer:
            raise upstream_http.answer_error(self._model, answer["error"], "in its answer")
        return answer

    async def stream(self, body: ChatBody) -> AsyncGenerator[dict[str, Any], None]:
        data, headers = orjson.dumps(body), self._headers(True)
        async with upstream_http.open_stream(
            self._session, self._model, self._url, data, headers, self._timeout
        ) as lines:
            async for line in lines:
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == _DONE:
                    return
                try:
                    event = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    raise UpstreamError(f"model server for {self._who} sent an invalid stream event") from None
                if "error" in event:
                    raise upstream_http.answer_error(self._model, event["error"], "mid-stream")
                yield event
