"""The agent-runtime app: sessions, their turns and event logs behind `/agent/sessions/{id}/...`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from fastapi import FastAPI, Request, Response

from codelab_agent_runtime.api import agent, metrics, sessions
from codelab_agent_runtime.api.deps import NotYourSession
from codelab_agent_runtime.core.config import Settings
from codelab_agent_runtime.core.errors import validation_code
from codelab_agent_runtime.core.metrics import AgentMetrics
from codelab_agent_runtime.llm.client import LLMClient, client_timeout
from codelab_agent_runtime.llm.models import ModelWindows
from codelab_agent_runtime.store.owners import Owners
from codelab_agent_runtime.store.sessions import SqlSessionStore
from codelab_agent_runtime.turns.feed import Feeds
from codelab_agent_runtime.turns.runner import Turns
from codelab_common.auth import InternalAuthMiddleware
from codelab_common.body_limit import BodyLimitMiddleware
from codelab_common.health import HEALTH_PATHS, health_router, next_hop_health
from codelab_common.http_errors import error_response, install_error_handlers
from codelab_common.metrics import open_metrics_paths
from codelab_common.openapi import add_schemas
from codelab_common.protocol import AgentRequest, ErrorCode
from codelab_common.request_id import RequestIdMiddleware
from codelab_common.tracing import NO_NATIVE_TELEMETRY, install_tracing

SERVICE = "agent-runtime"
DISTRIBUTION = "codelab-agent-runtime"
READ_BUFFER = 2**21
"""How much of llm-proxy's stream aiohttp holds before it stops reading (the stream is read in whole chunks)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]  # required values come from the environment

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = SqlSessionStore(settings.database_url)
        await store.start()
        http = aiohttp.ClientSession(
            timeout=client_timeout(settings.llm_connect_timeout_s, settings.llm_read_timeout_s),
            connector=aiohttp.TCPConnector(limit=0),
            read_bufsize=READ_BUFFER,
        )
        options = {
            key: value
            for key, value in (("temperature", settings.temperature), ("max_tokens", settings.max_tokens))
            if value is not None
        }
        llm = LLMClient(
            http,
            base_url=settings.llm_proxy_url,
            api_key=settings.llm_proxy_api_key.get_secret_value(),
            model=settings.model,
            metrics=app.state.metrics,
            options=options,
        )
        feeds = Feeds(store, settings.redis_url, settings.redis_channel_prefix, settings.follow_poll_s)
        await feeds.start()
        windows = ModelWindows(
            http, base_url=settings.llm_proxy_url, api_key=settings.llm_proxy_api_key.get_secret_value()
        )
        turns = Turns(settings, store, feeds, llm, app.state.metrics, windows)
        await turns.start()
        app.state.turns, app.state.feeds, app.state.store, app.state.http = turns, feeds, store, http
        app.state.owners = Owners(store)
        try:
            yield
        finally:
            await turns.close()
            await feeds.close()
            await http.close()
            await store.close()

    app = FastAPI(title="CodeLab agent-runtime", version="0.1.0", lifespan=lifespan, telemetry=NO_NATIVE_TELEMETRY)
    app.state.settings = settings
    app.state.metrics = AgentMetrics()
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        InternalAuthMiddleware,
        api_key=settings.internal_api_key.get_secret_value(),
        open_paths=(*HEALTH_PATHS, *open_metrics_paths(settings)),
    )
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app, validation_code=validation_code)
    app.add_exception_handler(NotYourSession, _not_your_session)
    app.include_router(health_router(SERVICE, DISTRIBUTION, {"database": _database, "llm_proxy": _llm_proxy}))
    app.include_router(agent.router)
    app.include_router(sessions.router)
    app.include_router(metrics.router)
    add_schemas(app, AgentRequest)
    install_tracing(app, SERVICE)
    return app


async def _not_your_session(_: Request, exc: Exception) -> Response:
    return error_response(404, str(exc), "invalid_request_error", ErrorCode.INVALID_SESSION)


async def _database(request: Request) -> str | None:
    await request.app.state.store.ping()
    return None


async def _llm_proxy(request: Request) -> str | None:
    return await next_hop_health(request.app.state.http, request.app.state.settings.llm_proxy_url)
