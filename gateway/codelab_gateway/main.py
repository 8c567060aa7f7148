"""The gateway app: client WebSockets in front of agent-runtime's sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request

from codelab_common.auth import InternalAuthMiddleware
from codelab_common.body_limit import BodyLimitMiddleware
from codelab_common.health import HEALTH_PATHS, health_router, next_hop_health
from codelab_common.http_errors import install_error_handlers
from codelab_common.metrics import open_metrics_paths
from codelab_common.request_id import RequestIdMiddleware
from codelab_common.tracing import NO_NATIVE_TELEMETRY, install_tracing
from codelab_gateway.api import internal, ws
from codelab_gateway.core.config import Settings
from codelab_gateway.core.metrics import GatewayMetrics
from codelab_gateway.sessions.hub import SessionHub
from codelab_gateway.transport.auth import ClientAuthenticator
from codelab_gateway.transport.connection import Services
from codelab_gateway.transport.ws_protocol import GatewayWebSocketProtocol
from codelab_gateway.upstream.agent_client import AgentClient

SERVICE = "gateway"
DISTRIBUTION = "codelab-gateway"
OPEN_PREFIXES = ("/ws/", "/api/v1/ws/")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]  # keys come from the environment

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        http = AgentClient.create_http_session(settings)
        hub = SessionHub(settings.max_sessions, GatewayMetrics())
        agent = AgentClient(http, settings)
        app.state.hub, app.state.agent, app.state.http = hub, agent, http
        app.state.services = Services(hub, agent, ClientAuthenticator(settings), settings)
        try:
            yield
        finally:
            await hub.close()
            await http.close()

    app = FastAPI(title="CodeLab gateway", version="0.1.0", lifespan=lifespan, telemetry=NO_NATIVE_TELEMETRY)
    app.state.settings = settings
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        InternalAuthMiddleware,
        api_key=settings.internal_api_key.get_secret_value(),
        open_paths=(*HEALTH_PATHS, *open_metrics_paths(settings)),
        open_prefixes=OPEN_PREFIXES,
    )
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app)
    app.include_router(health_router(SERVICE, DISTRIBUTION, {"agent_runtime": _agent_runtime}))
    app.include_router(ws.router)
    app.include_router(internal.router)
    install_tracing(app, SERVICE)
    return app


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's part of the client limits: the WebSocket implementation, the largest frame its transport takes
    (beyond it the socket closes with 1009 before the frame is buffered), compression and ping/pong."""
    return {
        "ws": GatewayWebSocketProtocol,
        "ws_per_message_deflate": settings.compression,
        "ws_max_size": max(settings.max_frame_bytes, settings.max_tool_result_bytes),
        "ws_ping_interval": settings.ping_interval_s,
        "ws_ping_timeout": settings.ping_timeout_s,
    }


async def _agent_runtime(request: Request) -> str | None:
    return await next_hop_health(request.app.state.http, request.app.state.settings.agent_runtime_url)
