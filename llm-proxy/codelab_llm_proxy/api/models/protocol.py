"""Wire models of the model lists: OpenAI's `GET /v1/models` shape (plus the context length) and the seed's
`GET /v1/llm/models` (a bare list)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    context_length: int
    """The model's context window in tokens (prompt and answer together)."""
    provider: str
    supports_tools: bool = True


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class LLMModel(BaseModel):
    """One entry of `GET /v1/llm/models`, as the seed's clients read it."""

    id: str
    name: str
    provider: str
    context_length: int
    is_available: bool
    """Some deployment of the model could take a request now (its circuit is not open and its key is set)."""
