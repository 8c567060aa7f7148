"""`POST /v1/llm/tokenize`: a chat request's prompt tokens, counted by the model's own tokenizer (needs
`X-Internal-Auth`). The body is read raw, so it is checked like every other body the proxy parses."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import ValidationError

from codelab_common.http_errors import describe_validation_errors
from codelab_common.openapi import json_body
from codelab_llm_proxy.api.responses import TOKENIZE
from codelab_llm_proxy.api.tokenize.protocol import TokenizeRequest, TokenizeResponse
from codelab_llm_proxy.api.tokenize.serving import TokenizeService
from codelab_llm_proxy.core.errors import InvalidRequest
from codelab_llm_proxy.core.json_body import parse_json_object

router = APIRouter(tags=["tokenize"], responses=TOKENIZE)


@router.post("/v1/llm/tokenize", openapi_extra=json_body(TokenizeRequest))
async def tokenize(request: Request) -> TokenizeResponse:
    try:
        body = TokenizeRequest.model_validate(parse_json_object(await request.body()))
    except ValidationError as exc:
        raise InvalidRequest(describe_validation_errors(exc.errors())) from None
    service: TokenizeService = request.app.state.tokenize
    return await service.count(body)
