"""`POST /v1/messages`: Anthropic's Messages endpoint, so the `anthropic` SDK can use any configured model.

Authentication is the proxy's usual key; here it may also come as `x-api-key` (what the SDK sends).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from codelab_common.openapi import json_body
from codelab_llm_proxy.api.chat_completions.api_router import _disconnected
from codelab_llm_proxy.api.messages.protocol import MessagesRequest
from codelab_llm_proxy.api.messages.serving import MessagesService
from codelab_llm_proxy.api.responses import MODEL_CALL
from codelab_llm_proxy.services.rate_limit import Caller

router = APIRouter(tags=["messages"], responses=MODEL_CALL)

MESSAGES_PATH = "/v1/messages"


def _caller(request: Request) -> Caller:
    headers = dict(request.headers)
    if "x-internal-auth" not in headers and "x-api-key" in headers:
        headers["x-internal-auth"] = headers["x-api-key"]
    return Caller.from_headers(headers, request.client.host if request.client else None)


@router.post(
    MESSAGES_PATH,
    openapi_extra=json_body(MessagesRequest),
    responses={200: {"content": {"application/json": {}, "text/event-stream": {}}, "description": "The answer"}},
)
async def create_message(request: Request) -> Response:
    service: MessagesService = request.app.state.messages
    body = await request.body()
    return await service.create(body, lambda: _disconnected(request), _caller(request))
