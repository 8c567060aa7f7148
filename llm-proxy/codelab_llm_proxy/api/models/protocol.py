"""Wire models of the model list (OpenAI's `GET /v1/models` shape plus the context length)."""

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
