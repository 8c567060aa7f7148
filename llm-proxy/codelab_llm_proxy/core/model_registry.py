"""The table of models the proxy serves: public name → provider, upstream model, URL, key and limits.

Read once at startup from a YAML file (`LLM_PROXY__MODELS_FILE`), or built from the settings when no file is
given (the embedded local model). See `models.example.yaml` for the file's shape.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from codelab_llm_proxy.core.config import Settings


class ModelConfigError(ValueError):
    """The models file is missing, unreadable or invalid; raised at startup, never per request."""


class ModelConfig(BaseModel):
    """One public model. `api_key_env` names the environment variable holding the key (the key never sits here)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    provider: str = "openai-compatible"
    upstream_model: str = ""
    base_url: str = Field(min_length=1)
    api_key_env: str | None = None
    context_window: int = Field(gt=0)
    tool_parser: str | None = None
    constrain_tool_calls: bool = False
    """Send a llama.cpp grammar (GBNF) so tool calls come out well formed; only for llama.cpp upstreams."""
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=300.0, gt=0)
    """Longest silence while waiting for the answer or between two streamed chunks."""
    owned_by: str | None = None

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def upstream_name(self) -> str:
        return self.upstream_model or self.name

    def api_key(self) -> str | None:
        """The key from the environment, read when needed so rotating it needs no config change."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelConfig] = Field(min_length=1)


class ModelRegistry:
    """Public name → `ModelConfig`, in the file's order."""

    def __init__(self, models: list[ModelConfig]) -> None:
        self._models: dict[str, ModelConfig] = {}
        for model in models:
            if model.name in self._models:
                raise ModelConfigError(f"model {model.name!r} is configured twice")
            self._models[model.name] = model

    def get(self, name: str) -> ModelConfig | None:
        return self._models.get(name)

    def __iter__(self) -> Iterator[ModelConfig]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)


def load_models_file(path: Path) -> list[ModelConfig]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelConfigError(f"cannot read models file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ModelConfigError(f"models file {path} is not valid YAML: {exc}") from exc
    try:
        return ModelsFile.model_validate(raw).models
    except ValidationError as exc:
        raise ModelConfigError(f"models file {path} is invalid: {exc}") from exc


def default_models(settings: Settings) -> list[ModelConfig]:
    """The built-in table: the embedded local llama.cpp server, with the bare-JSON tool-call parser."""
    return [
        ModelConfig(
            name=settings.local_model,
            provider="openai-compatible",
            upstream_model=settings.local_model,
            base_url=settings.local_model_url,
            context_window=settings.local_model_context_window,
            tool_parser="json",
            constrain_tool_calls=True,
            owned_by="codelab-local",
        )
    ]


def build_registry(settings: Settings) -> ModelRegistry:
    models = load_models_file(settings.models_file) if settings.models_file else default_models(settings)
    return ModelRegistry(models)
