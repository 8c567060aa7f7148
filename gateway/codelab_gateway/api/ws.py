"""The client-facing WebSockets (open: the IDE sends no auth header)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from codelab_gateway.services.connection import IDE_CLIENT, STREAM_CLIENT, serve_client

router = APIRouter()


@router.websocket("/ws/{session_id}")
async def stream_socket(websocket: WebSocket, session_id: str) -> None:
    """The seed's path: ACKs, token deltas; `?tools=a,b` names the tools the client runs (default: all)."""
    tools = websocket.query_params.get("tools")
    await serve_client(websocket, websocket.app.state.hub, session_id, STREAM_CLIENT, tools)


@router.websocket("/api/v1/ws/{session_id}")
async def ide_socket(websocket: WebSocket, session_id: str) -> None:
    """The CodeLab IDE's path: whole assistant messages, only frame types the IDE knows, IDE tools by default."""
    tools = websocket.query_params.get("tools")
    await serve_client(websocket, websocket.app.state.hub, session_id, IDE_CLIENT, tools)
