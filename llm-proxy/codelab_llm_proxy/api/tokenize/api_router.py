"""`POST /v1/llm/tokenize`: a chat request's prompt tokens, counted by the model's own tokenizer (needs
`X-Internal-Auth`)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from codelab_llm_proxy.api.tokenize.protocol import TokenizeRequest, TokenizeResponse
from codelab_llm_proxy.api.tokenize.serving import TokenizeService

router = APIRouter(tags=["tokenize"])


@router.post("/v1/llm/tokenize")
async def tokenize(body: TokenizeRequest, request: Request) -> TokenizeResponse:
    service: TokenizeService = request.app.state.tokenize
    return await service.count(body)
