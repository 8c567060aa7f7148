"""What llm-proxy knows of each model: its context window (`GET /v1/llm/models`, `context_length`) and, for a model
whose server has a tokenizer, a prompt's exact token count (`POST /v1/llm/tokenize`)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson
import structlog
from opentelemetry import trace

from codelab_common import tracing
from codelab_common.auth import INTERNAL_AUTH_HEADER

log = structlog.get_logger(__name__)

REFRESH_S = 60.0
"""A model missing from the list is asked for again at most this often (a deployment added meanwhile)."""


class ModelWindows:
    def __init__(self, http: aiohttp.ClientSession, *, base_url: str, api_key: str) -> None:
        self._http = http
        self._url = f"{base_url.rstrip('/')}/v1/llm/models"
        self._tokenize_url = f"{base_url.rstrip('/')}/v1/llm/tokenize"
        self._headers = {INTERNAL_AUTH_HEADER: api_key}
        self._windows: dict[str, int] = {}
        self._no_tokenizer: set[str] = set()
        self._fetched_at = float("-inf")
        self._json = {**self._headers, "Content-Type": "application/json"}

    async def window(self, model: str) -> int | None:
        """The model's context window in tokens; None when llm-proxy does not say (or cannot be reached)."""
        if model not in self._windows and time.monotonic() - self._fetched_at >= REFRESH_S:
            await self._fetch()
        return self._windows.get(model)

    async def count(self, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> int | None:
        """The prompt's tokens by the model's own tokenizer; None when it has none here (remembered) or the count
        fails (then the caller estimates)."""
        if model in self._no_tokenizer:
            return None
        body = {"model": model, "messages": messages, "tools": tools or None}
        try:
            headers = {**self._json, **_trace()}
            async with self._http.post(self._tokenize_url, data=orjson.dumps(body), headers=headers) as response:
                answer = orjson.loads(await response.read())
                if response.status == 404:
                    self._no_tokenizer.add(model)
                    return None
                if response.status != 200:
                    log.warning("token_count_failed", model=model, status=response.status)
                    return None
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            log.warning("token_count_failed", model=model, error=str(exc))
            return None
        tokens = answer.get("prompt_tokens") if isinstance(answer, dict) else None
        return tokens if isinstance(tokens, int) else None

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            async with self._http.get(self._url, headers={**self._headers, **_trace()}) as response:
                if response.status != 200:
                    log.warning("model_list_unavailable", status=response.status)
                    return
                listed = orjson.loads(await response.read())
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError) as exc:
            log.warning("model_list_unavailable", error=str(exc))
            return
        for model in listed if isinstance(listed, list) else []:
            if isinstance(model, dict) and isinstance(model.get("context_length"), int):
                self._windows[str(model.get("id"))] = model["context_length"]


def _trace() -> dict[str, str]:
    """The current trace's headers, so llm-proxy's side of the lookup belongs to the turn that needed it."""
    return tracing.trace_headers(trace.get_current_span())
