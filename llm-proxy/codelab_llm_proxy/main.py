"""The llm-proxy app: one OpenAI-compatible front for every configured model server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import structlog
from fastapi import FastAPI

from codelab_common.auth import InternalAuthMiddleware
from codelab_common.health import health_router
from codelab_llm_proxy.api.chat_completions.api_router import router as chat_router
from codelab_llm_proxy.api.chat_completions.serving import ChatCompletionService
from codelab_llm_proxy.api.models.api_router import router as models_router
from codelab_llm_proxy.api.models.serving import ModelsService
from codelab_llm_proxy.core.config import Settings
from codelab_llm_proxy.core.errors import install_error_handlers
from codelab_llm_proxy.core.model_registry import ModelRegistry, build_registry
from codelab_llm_proxy.services.providers import create_provider, provider_names
from codelab_llm_proxy.services.tool_parsers import ToolParser, get_tool_parser

log = structlog.get_logger(__name__)

SERVICE_NAME = "llm-proxy"
UPSTREAM_READ_BUFFER = 1 << 20
"""aiohttp refuses SSE lines over twice this size; one chunk with a large tool call must fit."""
UPSTREAM_CONNECTIONS = 1024


def _tool_parsers(registry: ModelRegistry) -> dict[str, ToolParser]:
    return {m.name: get_tool_parser(m.tool_parser) for m in registry if m.tool_parser}


def _check_providers(registry: ModelRegistry) -> None:
    known = set(provider_names())
    for model in registry:
        if model.provider not in known:
            raise ValueError(f"model {model.name!r}: unknown provider {model.provider!r} (known: {sorted(known)})")


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; the models table is read and checked here, so a bad file fails at startup."""
    settings = settings or Settings()  # type: ignore[call-arg]
    registry = build_registry(settings)
    _check_providers(registry)
    tool_parsers = _tool_parsers(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=UPSTREAM_CONNECTIONS, limit_per_host=0)
        async with aiohttp.ClientSession(connector=connector, read_bufsize=UPSTREAM_READ_BUFFER) as session:
            providers = {m.name: create_provider(m, session) for m in registry}
            app.state.chat_completions = ChatCompletionService(registry, providers, tool_parsers)
            for model in registry:
                if model.api_key_env and not model.api_key():
                    log.warning("model_api_key_missing", model=model.name, env_var=model.api_key_env)
            log.info("llm_proxy_ready", models=[m.name for m in registry])
            yield

    app = FastAPI(title="CodeLab llm-proxy", lifespan=lifespan)
    app.state.settings = settings
    app.state.models = ModelsService(registry)
    install_error_handlers(app)
    app.include_router(health_router(SERVICE_NAME))
    app.include_router(models_router)
    app.include_router(chat_router)
    app.add_middleware(
        InternalAuthMiddleware, api_key=settings.internal_api_key.get_secret_value(), open_paths=("/health",)
    )
    return app
