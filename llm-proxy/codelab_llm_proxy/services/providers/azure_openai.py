"""Azure OpenAI: OpenAI's wire format behind per-deployment URLs, an `api-key` header and an `api-version`.

The request goes to `{base_url}/openai/deployments/{deployment}/chat/completions?api-version={api_version}`, where
`base_url` is the resource endpoint (`https://NAME.openai.azure.com`) and the deployment is the model entry's
`upstream_model` (on Azure, the name given to the deployment). Answers are OpenAI's, so the OpenAI-compatible
provider's request, streaming and error handling are reused as they are; only the URL and the key header differ.
"""

from __future__ import annotations

from urllib.parse import quote

import aiohttp

from codelab_llm_proxy.core.model_registry import ModelConfig
from codelab_llm_proxy.services.providers.base import register_provider
from codelab_llm_proxy.services.providers.openai_compatible import OpenAICompatibleProvider

DEFAULT_API_VERSION = "2024-10-21"
"""The newest generally available data-plane version when written; set `api_version` per model to change it."""


@register_provider("azure-openai", "azure")
class AzureOpenAIProvider(OpenAICompatibleProvider):
    def __init__(self, model: ModelConfig, session: aiohttp.ClientSession) -> None:
        super().__init__(model, session)
        deployment = quote(model.upstream_name, safe="")
        version = quote(model.api_version or DEFAULT_API_VERSION, safe="")
        self._url = f"{model.base_url}/openai/deployments/{deployment}/chat/completions?api-version={version}"

    def _headers(self, stream: bool) -> dict[str, str]:
        headers = super()._headers(stream)
        headers.pop("Authorization", None)
        key = self._model.api_key()
        if key:
            headers["api-key"] = key
        return headers
