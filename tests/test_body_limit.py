"""The shared body limit (codelab_common.body_limit) on a bare app: the limit itself is accepted and one byte more
refused, declared or chunked; the app reads the accepted body whole; WebSockets pass through."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from fastapi import FastAPI, Request, WebSocket

from codelab_common.body_limit import BodyLimitMiddleware
from codelab_common.testing import serve_app

LIMIT = 1000


def app(**options: str) -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(str(len(await websocket.receive_text())))
        await websocket.close()

    app.add_middleware(BodyLimitMiddleware, max_bytes=LIMIT, **options)
    return app


async def chunks(data: bytes, size: int = 100) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("chunked", [False, True])
async def test_the_limit_is_accepted_and_one_byte_more_refused(chunked: bool) -> None:
    async with serve_app(app()) as url, aiohttp.ClientSession() as http:
        for size, status in ((0, 200), (LIMIT, 200), (LIMIT + 1, 413)):
            data = b"x" * size
            async with http.post(f"{url}/echo", data=chunks(data) if chunked else data) as response:
                body = await response.json()
            assert response.status == status, (size, body)
            if status == 200:
                assert body == {"size": size}
            else:
                assert body["error"] == {
                    "message": f"request body is larger than the limit of {LIMIT} bytes",
                    "type": "invalid_request_error",
                    "code": "TOO_LARGE",
                }


async def test_a_service_may_name_its_own_code() -> None:
    async with (
        serve_app(app(code="request_too_large")) as url,
        aiohttp.ClientSession() as http,
        http.post(f"{url}/echo", data=b"x" * (LIMIT + 1)) as response,
    ):
        assert (await response.json())["error"]["code"] == "request_too_large"


async def test_websocket_frames_are_not_bodies() -> None:
    async with serve_app(app()) as url, aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws") as ws:
        await ws.send_str("x" * (LIMIT * 10))
        assert await ws.receive_str() == str(LIMIT * 10)


def test_a_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        BodyLimitMiddleware(app(), max_bytes=0)
