"""The llm-proxy app: one OpenAI-compatible front for every configured model server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import structlog
from fastapi import FastAPI, Request

from codelab_common.auth import InternalAuthMiddleware
from codelab_common.body_limit import BodyLimitMiddleware
from codelab_common.health import HEALTH_PATHS, health_router
from codelab_common.metrics import open_metrics_paths
from codelab_common.openapi import add_schemas
from codelab_common.request_id import RequestIdMiddleware
from codelab_common.tracing import NO_NATIVE_TELEMETRY, install_tracing
from codelab_llm_proxy.api.admin.api_router import router as admin_router
from codelab_llm_proxy.api.chat_completions.api_router import router as chat_router
from codelab_llm_proxy.api.chat_completions.protocol import ChatCompletionRequest
from codelab_llm_proxy.api.chat_completions.serving import ChatCompletionService
from codelab_llm_proxy.api.messages.api_router import MESSAGES_PATH
from codelab_llm_proxy.api.messages.api_router import router as messages_router
from codelab_llm_proxy.api.messages.protocol import MessagesRequest
from codelab_llm_proxy.api.messages.serving import MessagesService
from codelab_llm_proxy.api.metrics.api_router import router as metrics_router
from codelab_llm_proxy.api.models.api_router import router as models_router
from codelab_llm_proxy.api.models.serving import ModelsService
from codelab_llm_proxy.api.tokenize.api_router import router as tokenize_router
from codelab_llm_proxy.api.tokenize.protocol import TokenizeRequest
from codelab_llm_proxy.api.tokenize.serving import TokenizeService
from codelab_llm_proxy.core.config import Settings
from codelab_llm_proxy.core.errors import install_error_handlers
from codelab_llm_proxy.core.model_registry import ModelRegistry, build_registry
from codelab_llm_proxy.services.observability import ObservabilityMiddleware, ProxyMetrics
from codelab_llm_proxy.services.providers import provider_names
from codelab_llm_proxy.services.rate_limit import RateLimiter, rate_limiter
from codelab_llm_proxy.services.routing.router import Router

log = structlog.get_logger(__name__)

SERVICE_NAME = "llm-proxy"
DISTRIBUTION = "codelab-llm-proxy"
UPSTREAM_READ_BUFFER = 1 << 20
"""aiohttp refuses SSE lines over twice this size; one chunk with a large tool call must fit."""
UPSTREAM_CONNECTIONS = 1024


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
    own_keys = [settings.internal_api_key.get_secret_value(), *(k.get_secret_value() for k in settings.caller_keys)]
    router = Router(registry, secrets=own_keys)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=UPSTREAM_CONNECTIONS, limit_per_host=0)
        async with (
            aiohttp.ClientSession(connector=connector, read_bufsize=UPSTREAM_READ_BUFFER) as session,
            rate_limiter(settings, registry) as limiter,
        ):
            router.connect(session)
            app.state.limiter = limiter
            app.state.chat_completions = ChatCompletionService(registry, router, limiter, settings.sse_keep_alive_s)
            app.state.messages = MessagesService(app.state.chat_completions, registry)
            app.state.tokenize = TokenizeService(router, session)
            for model in registry:
                if model.api_key_env and not model.api_key():
                    log.warning("model_api_key_missing", model=model.name, env_var=model.api_key_env)
            log.info("llm_proxy_ready", models=[m.name for m in registry])
            yield

    app = FastAPI(title="CodeLab llm-proxy", lifespan=lifespan, telemetry=NO_NATIVE_TELEMETRY)
    app.state.settings = settings
    app.state.models = ModelsService(registry, router.available)
    app.state.router = router
    app.state.metrics = metrics = ProxyMetrics()
    metrics.set_health_source(router.health)
    install_error_handlers(app)
    checks = {"models": _models} | ({"redis": _redis} if settings.redis_url else {})
    app.include_router(health_router(SERVICE_NAME, DISTRIBUTION, checks))
    app.include_router(models_router)
    app.include_router(chat_router)
    app.include_router(admin_router)
    app.include_router(messages_router)
    app.include_router(metrics_router)
    app.include_router(tokenize_router)
    add_schemas(app, ChatCompletionRequest, MessagesRequest, TokenizeRequest)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, code="request_too_large")
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    app.add_middleware(
        InternalAuthMiddleware,
        api_key=settings.internal_api_key.get_secret_value(),
        open_paths=(*HEALTH_PATHS, *open_metrics_paths(settings)),
        accept_bearer=True,
        x_api_key_prefixes=(MESSAGES_PATH,),
        extra_keys=[k.get_secret_value() for k in settings.caller_keys],
    )
    app.add_middleware(RequestIdMiddleware)
    install_tracing(app, SERVICE_NAME)
    return app


async def _models(request: Request) -> str | None:
    router: Router = request.app.state.router
    return await router.readiness()


async def _redis(request: Request) -> str | None:
    limiter: RateLimiter | None = request.app.state.limiter
    if limiter is not None:
        await limiter.ping()
    return None
