"""Run ASGI apps on real loopback sockets inside a test's event loop."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import uvicorn

from codelab_common.service import GRACEFUL_SHUTDOWN_S


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serve_app(app: Any, port: int | None = None, **uvicorn_options: Any) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on 127.0.0.1 and yield its base URL (`http://127.0.0.1:PORT`)."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port or 0,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **uvicorn_options,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped before it started")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        await task


async def wait_for_health(base_url: str, timeout: float = 30.0) -> None:
    """Poll `GET {base_url}/health` until it answers 200."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{base_url}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{base_url} not healthy after {timeout} s")
            await asyncio.sleep(0.1)
