"""Internal endpoints (X-Internal-Auth): metrics and the sessions this gateway holds."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from codelab_gateway.models.sessions import SessionInfo, SessionList, TurnInfo
from codelab_gateway.services.session import Session
from codelab_gateway.services.session_hub import SessionHub

router = APIRouter()


def _hub(request: Request) -> SessionHub:
    hub: SessionHub = request.app.state.hub
    return hub


@router.get("/metrics", tags=["internal"])
async def metrics(request: Request) -> Response:
    return _hub(request).metrics.response()


@router.get("/internal/sessions", tags=["internal"])
async def sessions(request: Request) -> SessionList:
    """Sessions in memory: connected or not, the running turn, and how far delivery got."""
    return SessionList(sessions=[_describe(session) for session in _hub(request).sessions()])


def _describe(session: Session) -> SessionInfo:
    connection, turn = session.connection, session.turn
    return SessionInfo(
        session_id=session.id,
        connected=connection is not None,
        dialect=connection.dialect.name if connection else None,
        tools=session.tools,
        turn=TurnInfo(message_id=turn.message_id, state=turn.state, pending_call_ids=session.pending_call_ids)
        if turn
        else None,
        last_seq=session.log.last_seq,
        delivered_seq=session.delivered_seq,
        buffered_frames=len(session.log),
    )
