"""Counting a chat request's prompt tokens with the model's own tokenizer, where its server offers one.

A model whose `tokenizer` is `llama.cpp` (the embedded local model) is counted by its server: the request is
prepared as its deployment would send it (tools in the system message for a tool-parser model), rendered with the
server's chat template (`POST /apply-template`) and tokenized (`POST /tokenize`). Other models have no tokenizer
here: 404 `no_tokenizer`, and the caller estimates.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from codelab_llm_proxy.api.tokenize.protocol import TokenizeRequest, TokenizeResponse
from codelab_llm_proxy.core.errors import ModelNotFound, ProxyError, UpstreamError
from codelab_llm_proxy.services.routing.deployment import CompletionRequest
from codelab_llm_proxy.services.routing.router import Router

TIMEOUT = aiohttp.ClientTimeout(total=10)


class NoTokenizer(ProxyError):
    status, type, code = 404, "invalid_request_error", "no_tokenizer"


class TokenizeService:
    def __init__(self, router: Router, session: aiohttp.ClientSession) -> None:
        self._router = router
        self._http = session

    async def count(self, request: TokenizeRequest) -> TokenizeResponse:
        chain = self._router.chain(request.model)
        if not chain:
            raise ModelNotFound(f"model {request.model!r} does not exist")
        deployment = next((d for d in chain if d.config.tokenizer == "llama.cpp"), None)
        if deployment is None:
            raise NoTokenizer(f"model {request.model!r} has no tokenizer here; estimate its tokens")
        body: dict[str, Any] = {"messages": request.messages}
        offered: dict[str, dict[str, Any]] = {}
        if request.tools:
            body["tools"] = request.tools
            offered = {
                str(tool.get("function", {}).get("name")): tool.get("function", {})
                for tool in request.tools
                if isinstance(tool, dict)
            }
        prepared = deployment.prepare(CompletionRequest(request.model, body, offered, 0))
        root = deployment.config.base_url.removesuffix("/v1")
        template: dict[str, Any] = {key: prepared[key] for key in ("messages", "tools") if key in prepared}
        rendered = await self._post(f"{root}/apply-template", template)
        tokens = await self._post(f"{root}/tokenize", {"content": rendered.get("prompt", "")})
        return TokenizeResponse(model=request.model, prompt_tokens=len(tokens.get("tokens") or []))

    async def _post(self, url: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            async with self._http.post(url, json=body, timeout=TIMEOUT) as response:
                if response.status != 200:
                    raise UpstreamError(f"the model's server could not count tokens (HTTP {response.status})")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"the model's server could not count tokens: {type(exc).__name__}") from None
        if not isinstance(answer, dict):
            raise UpstreamError("the model's server answered the count in an unknown shape")
        return answer
