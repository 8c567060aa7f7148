"""Request ids: every HTTP request gets one, taken from `X-Request-ID` or made, and every log line carries it.

A caller's id is kept only when it is printable ASCII of at most 128 characters, so a hostile header can neither
forge log structure nor bloat every line; otherwise (or when absent) a fresh one is made. The id is bound into
structlog's context variables for the request's lifetime and echoed on the response, so one id follows a request
across gateway → agent-runtime → llm-proxy when each hop forwards the header.

A caller's `X-Session-ID` (agent-runtime sends it to llm-proxy, which keeps no sessions) is bound as `session_id`
under the same rules, so a service that never sees a session still logs which one a request served.
"""

from __future__ import annotations

import random
from contextvars import ContextVar

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
SESSION_ID_HEADER = "X-Session-ID"
MAX_REQUEST_ID_LENGTH = 128
_HEADER_KEY = REQUEST_ID_HEADER.lower().encode()
_SESSION_KEY = SESSION_ID_HEADER.lower().encode()

current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)
"""The id of the request being served (None outside one); forward it to downstream services as `X-Request-ID`."""


def new_request_id() -> str:
    """32 random hex characters. An id only has to be unique, not unguessable, so Python's PRNG serves (a
    `uuid4()` costs a system call per request)."""
    return f"{random.getrandbits(128):032x}"


def valid_request_id(value: bytes) -> str | None:
    """The caller's id if it is 1..128 printable ASCII characters (no spaces or controls), else None."""
    if not 0 < len(value) <= MAX_REQUEST_ID_LENGTH:
        return None
    if not all(0x21 <= byte <= 0x7E for byte in value):
        return None
    return value.decode("ascii")


class RequestIdMiddleware:
    """Pure ASGI middleware (no per-chunk cost beyond one function call): binds `request_id` (and a caller's
    `session_id`) into structlog's context variables and adds `X-Request-ID` to the response's headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = session_id = None
        for name, value in scope["headers"]:
            if name == _HEADER_KEY:
                request_id = valid_request_id(value)
            elif name == _SESSION_KEY:
                session_id = valid_request_id(value)
        request_id = request_id or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (_HEADER_KEY, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = current_request_id.set(request_id)
        ids = {"request_id": request_id} if session_id is None else {"request_id": request_id, "session_id": session_id}
        bound = structlog.contextvars.bind_contextvars(**ids)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.reset_contextvars(**bound)
            current_request_id.reset(token)
