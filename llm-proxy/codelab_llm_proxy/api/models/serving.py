"""Behaviour of the model list: the registry as OpenAI model cards."""

from __future__ import annotations

import time

from codelab_llm_proxy.api.models.protocol import ModelCard, ModelList
from codelab_llm_proxy.core.errors import ModelNotFound
from codelab_llm_proxy.core.model_registry import ModelConfig, ModelRegistry


class ModelsService:
    def __init__(self, registry: ModelRegistry) -> None:
        self._registry = registry
        self._created = int(time.time())

    def list(self) -> ModelList:
        return ModelList(data=[self._card(model) for model in self._registry])

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
