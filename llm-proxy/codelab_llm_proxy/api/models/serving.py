"""Behaviour of the model lists: the registry as OpenAI model cards, and as the seed's list with availability."""

from __future__ import annotations

import time
from collections.abc import Callable

from codelab_llm_proxy.api.models.protocol import LLMModel, ModelCard, ModelList
from codelab_llm_proxy.core.errors import ModelNotFound
from codelab_llm_proxy.core.model_registry import ModelConfig, ModelRegistry


class ModelsService:
    def __init__(self, registry: ModelRegistry, available: Callable[[str], bool]) -> None:
        self._registry = registry
        self._available = available
        self._created = int(time.time())

    def model_list(self) -> ModelList:
        return ModelList(data=[self._card(model) for model in self._registry])

    def llm_models(self) -> list[LLMModel]:
        return [
            LLMModel(
                id=model.name,
                name=model.name,
                provider=model.provider,
                context_length=model.context_window,
                is_available=self._available(model.name),
            )
            for model in self._registry
        ]

    def get(self, name: str) -> ModelCard:
        model = self._registry.get(name)
        if model is None:
            raise ModelNotFound(f"model {name!r} does not exist")
        return self._card(model)

    def _card(self, model: ModelConfig) -> ModelCard:
        return ModelCard(
            id=model.name,
            created=self._created,
            owned_by=model.owned_by or model.provider,
            context_length=model.context_window,
            provider=model.provider,
        )
