"""`GET /v1/models` (OpenAI's path), `GET /v1/llm/models` (the project's) and `GET /v1/models/{id}`."""

from __future__ import annotations

from fastapi import APIRouter, Request

from codelab_llm_proxy.api.models.protocol import LLMModel, ModelCard, ModelList
from codelab_llm_proxy.api.models.serving import ModelsService
from codelab_llm_proxy.api.responses import MODEL_NOT_FOUND

router = APIRouter(tags=["models"])


def _service(request: Request) -> ModelsService:
    service: ModelsService = request.app.state.models
    return service


@router.get("/v1/models")
async def list_models(request: Request) -> ModelList:
    return _service(request).model_list()


@router.get("/v1/llm/models")
async def list_llm_models(request: Request) -> list[LLMModel]:
    return _service(request).llm_models()


@router.get("/v1/models/{model_id:path}", responses=MODEL_NOT_FOUND)
async def get_model(model_id: str, request: Request) -> ModelCard:
    return _service(request).get(model_id)
