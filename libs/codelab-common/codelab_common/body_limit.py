"""Refuse request bodies over a size limit with 413 before anything parses them.

Every service mounts `BodyLimitMiddleware` inside the internal-auth check (so a caller without the key is refused
before any of its body is read) with its `max_body_bytes` setting. A declared `Content-Length` over the limit is
refused without reading; a chunked body (no `Content-Length`) is read up to the limit and refused as soon as it
passes it. An accepted body is handed on as one message, after which the original `receive` takes over again, so
the app still learns of the client's disconnect. WebSockets pass untouched (their frames have their own limit).

The answer is the project's envelope, `{"error": {"message", "type": "invalid_request_error", "code"}}`, with
`code` TOO_LARGE (llm-proxy keeps OpenAI's spelling, `request_too_large`).
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codelab_common.http_errors import error_body

TOO_LARGE = "TOO_LARGE"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_bytes: int, code: str = TOO_LARGE) -> None:
        if max_bytes <= 0:
            raise ValueError("the body limit must be a positive number of bytes")
        self.app = app
        self._max = max_bytes
        self._code = code

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self._max:
            await self._refuse(send)
            return
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                await self._refuse(send)
                return
            parts.append(chunk)
            if not message.get("more_body", False):
                break
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        await self.app(scope, _replay({"type": "http.request", "body": body, "more_body": False}, receive), send)

    async def _refuse(self, send: Send) -> None:
        message = f"request body is larger than the limit of {self._max} bytes"
        body = orjson.dumps(error_body(message, "invalid_request_error", self._code))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _replay(first: Message, receive: Receive) -> Receive:
    pending: list[Message] = [first]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
