"""`GET /agent/sessions/{session_id}`: a session's history and where its turn stands; `.../approvals`: the decisions
taken in it; `POST .../claim`: make a session the calling principal's (the gateway's first call for a client)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from codelab_agent_runtime.api.deps import owned_session
from codelab_agent_runtime.models.api import ApprovalsView, SessionClaim, SessionView
from codelab_agent_runtime.turns.runner import Turns
from codelab_common.http_errors import error_response
from codelab_common.protocol import PRINCIPAL_HEADER

router = APIRouter(tags=["sessions"])

NO_SESSION: dict[int | str, dict[str, Any]] = {404: {"description": "INVALID_SESSION: no such session"}}


@router.get("/agent/sessions/{session_id}", response_model=SessionView, responses=NO_SESSION)
async def get_session(session_id: str, request: Request) -> SessionView | Response:
    turns: Turns = request.app.state.turns
    view = await turns.describe(session_id)
    if view is None:
        return error_response(404, f"no session {session_id!r}", "invalid_request_error", "INVALID_SESSION")
    return view


@router.get("/agent/sessions/{session_id}/approvals", response_model=ApprovalsView, responses=NO_SESSION)
async def get_approvals(session_id: str, request: Request) -> ApprovalsView | Response:
    turns: Turns = request.app.state.turns
    view = await turns.approvals(session_id)
    if view is None:
        return error_response(404, f"no session {session_id!r}", "invalid_request_error", "INVALID_SESSION")
    return view


@router.post(
    "/agent/sessions/{session_id}/claim",
    response_model=SessionClaim,
    responses={404: {"description": "INVALID_SESSION: the session is another principal's"}},
    dependencies=[Depends(owned_session)],
)
async def claim_session(session_id: str, request: Request) -> SessionClaim:
    """With `X-Codelab-Principal`: the session is that principal's from now on if it did not exist, else 404
    unless it already was. Without it, nothing is checked or recorded."""
    return SessionClaim(session_id=session_id, principal=request.headers.get(PRINCIPAL_HEADER))
