"""Send a recorded upstream response verbatim: the fake upstreams' `replay` answers."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.responses import Response, StreamingResponse


def is_sse(raw: bytes) -> bool:
    return raw.lstrip().startswith((b"data:", b"event:", b":"))


def replay_response(raw: bytes, status: int = 200) -> Response:
    """SSE text goes out event by event (each write one whole event, as a real server flushes); JSON in one go."""
    if not is_sse(raw):
        return Response(raw, status_code=status, media_type="application/json")

    async def events() -> AsyncIterator[bytes]:
        for event in raw.split(b"\n\n"):
            if event:
                yield event + b"\n\n"

    return StreamingResponse(events(), status_code=status, media_type="text/event-stream")
