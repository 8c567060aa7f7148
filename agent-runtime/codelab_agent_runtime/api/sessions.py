"""`GET /agent/sessions/{session_id}`: a session's history and where its turn stands; `.../approvals`: the decisions
taken in it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from codelab_agent_runtime.models.api import ApprovalsView, SessionView
from codelab_agent_runtime.turns.runner import Turns
from codelab_common.http_errors import error_response

router = APIRouter(tags=["sessions"])


@router.get("/agent/sessions/{session_id}", response_model=SessionView)
async def get_session(session_id: str, request: Request) -> SessionView | Response:
    turns: Turns = request.app.state.turns
    view = await turns.describe(session_id)
    if view is None:
        return error_response(404, f"no session {session_id!r}", "invalid_request_error", "INVALID_SESSION")
    return view


@router.get("/agent/sessions/{session_id}/approvals", response_model=ApprovalsView)
async def get_approvals(session_id: str, request: Request) -> ApprovalsView | Response:
    turns: Turns = request.app.state.turns
    view = await turns.approvals(session_id)
    if view is None:
        return error_response(404, f"no session {session_id!r}", "invalid_request_error", "INVALID_SESSION")
    return view
