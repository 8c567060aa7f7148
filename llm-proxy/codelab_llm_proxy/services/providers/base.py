"""The provider interface: how the proxy talks to one kind of model server.

Every provider speaks the OpenAI chat-completions shape towards the proxy: `complete` returns a
`chat.completion` dict and `stream` yields `chat.completion.chunk` dicts. A provider whose server speaks
something else (Anthropic, Azure's deployments) translates inside itself, so the serving layer never changes.
Failures are raised as `codelab_llm_proxy.core.errors.UpstreamError` (or its subclasses).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol

import aiohttp

from codelab_llm_proxy.core.model_registry import ModelConfig

ChatBody = dict[str, Any]
"""A validated OpenAI chat-completions request body, `model` already set to the upstream's name."""


class Provider(Protocol):
    async def complete(self, body: ChatBody) -> dict[str, Any]:
        """One non-streamed `chat.completion`."""
        ...

    def stream(self, body: ChatBody) -> AsyncGenerator[dict[str, Any], None]:
        """`chat.completion.chunk` dicts as they arrive; the upstream request is cancelled when closed early."""
        ...


ProviderFactory = Callable[[ModelConfig, aiohttp.ClientSession], Provider]

_PROVIDERS: dict[str, ProviderFactory] = {}


def register_provider[F: ProviderFactory](*names: str) -> Callable[[F], F]:
    """Class decorator: make a provider available to models files under each of `names`."""

    def decorate(factory: F) -> F:
        for name in names:
            _PROVIDERS[name] = factory
        return factory

    return decorate


def provider_names() -> list[str]:
    return sorted(_PROVIDERS)


def create_provider(model: ModelConfig, session: aiohttp.ClientSession) -> Provider:
    try:
        factory = _PROVIDERS[model.provider]
    except KeyError:
        raise ValueError(
            f"model {model.name!r}: unknown provider {model.provider!r} (known: {', '.join(provider_names())})"
        ) from None
    return factory(model, session)
