"""Bodies of `POST /v1/llm/tokenize`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class TokenizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=256)
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None


class TokenizeResponse(BaseModel):
    model: str
    prompt_tokens: int
    """The prompt's tokens as the model's own server counts them: the chat template applied, the tools included the
    way this proxy presents them to that model."""
    counted_by: Literal["tokenizer"] = "tokenizer"
