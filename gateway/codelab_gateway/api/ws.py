"""The client-facing WebSockets (open: the IDE sends no auth header)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from codelab_gateway.transport.connection import IDE_CLIENT, STREAM_CLIENT, ClientProfile, serve_client

router = APIRouter()


@router.websocket("/ws/{session_id}")
async def stream_socket(websocket: WebSocket, session_id: str) -> None:
    """The seed's path: ACKs, token deltas; `?tools=a,b` names the tools the client runs (default: all);
    `?last_seq=N` resumes after the frame with seq N."""
    await _serve(websocket, session_id, STREAM_CLIENT)


@router.websocket("/api/v1/ws/{session_id}")
async def ide_socket(websocket: WebSocket, session_id: str) -> None:
    """The CodeLab IDE's path: whole assistant messages, only frame types the IDE knows, IDE tools by default."""
    await _serve(websocket, session_id, IDE_CLIENT)


async def _serve(websocket: WebSocket, session_id: str, profile: ClientProfile) -> None:
    state = websocket.app.state
    await serve_client(websocket, state.hub, state.agent, session_id, profile, state.settings.max_frame_bytes)
