"""Model-server providers, registered by name; importing this package registers the built-in ones."""

from codelab_llm_proxy.services.providers import anthropic as _anthropic  # noqa: F401
from codelab_llm_proxy.services.providers import azure_openai as _azure_openai  # noqa: F401
from codelab_llm_proxy.services.providers import openai_compatible as _openai_compatible  # noqa: F401
from codelab_llm_proxy.services.providers.base import (
    ChatBody,
    Provider,
    create_provider,
    provider_names,
    register_provider,
)

__all__ = ["ChatBody", "Provider", "create_provider", "provider_names", "register_provider"]
