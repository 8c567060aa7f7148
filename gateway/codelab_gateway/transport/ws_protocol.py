"""uvicorn's sans-I/O WebSocket protocol, with two handshake refusals made whole.

- The WebSocket parser refuses a handshake with a line over 8 KiB or more than 128 headers before the app sees it,
  and prepares its answer (414 or 431); uvicorn never sends it and leaves the connection open, so each such
  handshake held a socket until the client gave up. Here the answer is sent and the connection closed.
- A handshake the app turns down with an HTTP response (401, 403, 404, 429, 431) was logged by uvicorn as an
  ERROR, "ASGI callable returned without completing handshake": a line any client could add at will.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    def data_received(self, data: bytes) -> None:
        if self.handshake_initiated:
            super().data_received(data)
            return
        self.conn.receive_data(data)
        if self.conn.handshake_exc is not None:
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()
            return
        self.handle_events()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            self.handshake_complete = True  # answered with a response: the handshake is over
