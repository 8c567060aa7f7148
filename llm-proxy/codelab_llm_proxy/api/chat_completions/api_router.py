"""`POST /v1/chat/completions`: OpenAI's chat endpoint (the body is read raw and validated by the service)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from codelab_common.openapi import json_body
from codelab_llm_proxy.api.chat_completions.protocol import ChatCompletionRequest
from codelab_llm_proxy.api.chat_completions.serving import ChatCompletionService
from codelab_llm_proxy.api.responses import MODEL_CALL
from codelab_llm_proxy.services.rate_limit import Caller

router = APIRouter(tags=["chat"], responses=MODEL_CALL)


def _service(request: Request) -> ChatCompletionService:
    service: ChatCompletionService = request.app.state.chat_completions
    return service


async def _disconnected(request: Request) -> None:
    """Completes when the client goes away (the body is already read, so the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.post(
    "/v1/chat/completions",
    openapi_extra=json_body(ChatCompletionRequest),
    responses={200: {"content": {"application/json": {}, "text/event-stream": {}}, "description": "The answer"}},
)
async def create_chat_completion(request: Request) -> Response:
    body = await request.body()
    caller = Caller.from_headers(request.headers, request.client.host if request.client else None)
    return await _service(request).create(body, lambda: _disconnected(request), caller)
