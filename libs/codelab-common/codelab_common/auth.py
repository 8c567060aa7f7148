"""Internal authentication: every endpoint but the open ones requires `X-Internal-Auth`."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

INTERNAL_AUTH_HEADER = "X-Internal-Auth"


class InternalAuthMiddleware:
    """Answers 401 to HTTP requests whose `X-Internal-Auth` header is not the service's key.

    `open_paths` are exact paths served without the key (`/health`); `open_prefixes` cover whole trees (the
    gateway's client-facing WebSockets). The body is `{"error": {"message", "type", "code"}}`.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str,
        open_paths: Iterable[str] = ("/health",),
        open_prefixes: Iterable[str] = (),
    ) -> None:
        if not api_key:
            raise ValueError("the internal API key must not be empty")
        self.app = app
        self._key = api_key.encode()
        self._open_paths = frozenset(open_paths)
        self._open_prefixes = tuple(open_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self._is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self._authorised(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 4401, "reason": "unauthorized"})
            return
        body = orjson.dumps(
            {
                "error": {
                    "message": f"missing or wrong {INTERNAL_AUTH_HEADER} header",
                    "type": "authentication_error",
                    "code": "UNAUTHORIZED",
                }
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _is_open(self, path: str) -> bool:
        return path in self._open_paths or path.startswith(self._open_prefixes)

    def _authorised(self, scope: Scope) -> bool:
        wanted = INTERNAL_AUTH_HEADER.lower().encode()
        for name, value in scope["headers"]:
            if name == wanted:
                return hmac.compare_digest(value, self._key)
        return False
