"""Internal endpoints (X-Internal-Auth): metrics and the sessions this gateway serves."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

from codelab_gateway.models.sessions import SessionInfo, SessionList
from codelab_gateway.sessions.hub import SessionHub

router = APIRouter()


def _hub(request: Request) -> SessionHub:
    hub: SessionHub = request.app.state.hub
    return hub


@router.get("/metrics", tags=["internal"], response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    return _hub(request).metrics.response()


@router.get("/internal/sessions", tags=["internal"])
async def sessions(request: Request) -> SessionList:
    """Sessions this gateway has served: connected or not, and how far delivery got. Turns live in agent-runtime
    (`GET /agent/sessions/{id}` there)."""
    return SessionList(
        sessions=[
            SessionInfo(
                session_id=session_id,
                connected=connection is not None,
                dialect=connection.dialect_name if connection else None,
                tools=connection.tools if connection else None,
                delivered_seq=delivered,
            )
            for session_id, connection, delivered in _hub(request).sessions()
        ]
    )
