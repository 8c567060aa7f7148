"""Internal authentication: every endpoint but the open ones requires `X-Internal-Auth`."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from codelab_common.health import HEALTH_PATHS

INTERNAL_AUTH_HEADER = "X-Internal-Auth"
_INTERNAL_AUTH_NAME = INTERNAL_AUTH_HEADER.lower().encode()


class InternalAuthMiddleware:
    """Answers 401 to HTTP requests whose `X-Internal-Auth` header is not the service's key.

    `open_paths` are exact paths served without the key (`/health`, `/ready`); `open_prefixes` cover whole trees (the
    gateway's client-facing WebSockets). The body is `{"error": {"message", "type", "code"}}`.

    `accept_bearer` also accepts the key as `Authorization: Bearer <key>` (what OpenAI SDKs send);
    `extra_keys` are further accepted keys (e.g. per-caller keys of the llm-proxy).
    `x_api_key_prefixes` are path prefixes where the key may also come as `x-api-key` (what the `anthropic` SDK
    sends, e.g. the llm-proxy's `/v1/messages`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        api_key: str,
        open_paths: Iterable[str] = HEALTH_PATHS,
        open_prefixes: Iterable[str] = (),
        accept_bearer: bool = False,
        extra_keys: Iterable[str] = (),
        x_api_key_prefixes: Iterable[str] = (),
    ) -> None:
        if not api_key:
            raise ValueError("the internal API key must not be empty")
        self.app = app
        self._key = api_key.encode()
        self._keys = (self._key, *(k.encode() for k in extra_keys if k))
        self._accept_bearer = accept_bearer
        self._open_paths = frozenset(open_paths)
        self._open_prefixes = tuple(open_prefixes)
        self._x_api_key_prefixes = tuple(x_api_key_prefixes)

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
        x_api_key = bool(self._x_api_key_prefixes) and scope["path"].startswith(self._x_api_key_prefixes)
        for name, value in scope["headers"]:
            if name == _INTERNAL_AUTH_NAME:
                presented = value
            elif self._accept_bearer and name == b"authorization" and value[:7].lower() == b"bearer ":
                presented = value[7:].strip()
            elif x_api_key and name == b"x-api-key":
                presented = value
            else:
                continue
            if self._accepts(presented):
                return True
        return False

    def _accepts(self, presented: bytes) -> bool:
        """Compares against every key (no early exit), so timing does not tell which key nearly matched."""
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(presented, key)
        return matched
