"""Each model's context window, as llm-proxy lists it (`GET /v1/llm/models`, `context_length`)."""

from __future__ import annotations

import time

import aiohttp
import orjson
import structlog

from codelab_common.auth import INTERNAL_AUTH_HEADER

log = structlog.get_logger(__name__)

REFRESH_S = 60.0
"""A model missing from the list is asked for again at most this often (a deployment added meanwhile)."""


class ModelWindows:
    def __init__(self, http: aiohttp.ClientSession, *, base_url: str, api_key: str) -> None:
        self._http = http
        self._url = f"{base_url.rstrip('/')}/v1/llm/models"
        self._headers = {INTERNAL_AUTH_HEADER: api_key}
        self._windows: dict[str, int] = {}
        self._fetched_at = float("-inf")

    async def window(self, model: str) -> int | None:
        """The model's context window in tokens; None when llm-proxy does not say (or cannot be reached)."""
        if model not in self._windows and time.monotonic() - self._fetched_at >= REFRESH_S:
            await self._fetch()
        return self._windows.get(model)

    async def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            async with self._http.get(self._url, headers=self._headers) as response:
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
