"""The client-facing WebSockets; who may connect is `transport/auth.py`'s to decide (the IDE sends no credential,
so it is served with `GATEWAY__CLIENT_AUTH=none` on loopback, or behind a proxy that adds one)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from codelab_gateway.transport.connection import IDE_CLIENT, STREAM_CLIENT, Services, serve_client

router = APIRouter()


@router.websocket("/ws/{session_id}")
async def stream_socket(websocket: WebSocket, session_id: str) -> None:
    """The seed's path: ACKs, token deltas; `?tools=a,b` names the tools the client runs (default: all);
    `?last_seq=N` resumes after the frame with seq N."""
    await serve_client(websocket, _services(websocket), session_id, STREAM_CLIENT)


@router.websocket("/api/v1/ws/{session_id}")
async def ide_socket(websocket: WebSocket, session_id: str) -> None:
    """The CodeLab IDE's path: whole assistant messages, only frame types the IDE knows, IDE tools by default."""
    await serve_client(websocket, _services(websocket), session_id, IDE_CLIENT)


def _services(websocket: WebSocket) -> Services:
    services: Services = websocket.app.state.services
    return services
