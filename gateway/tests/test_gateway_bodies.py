"""Request bodies on the gateway's HTTP endpoints: none of them reads one, so a body over `max_body_bytes` is a 413
(declared or chunked) and any other body, however deeply nested, changes nothing and is never a 5xx. The client
WebSockets are not HTTP bodies: their frames have their own limit (`max_frame_bytes`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from codelab_common.settings import DEFAULT_MAX_BODY_BYTES
from tests.fixtures.gateway import RunningGateway

LIMIT = 10_000
ENDPOINTS = [("GET", "/internal/sessions"), ("GET", "/metrics"), ("GET", "/health"), ("GET", "/ready")]


async def chunks(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    """A body sent with `Transfer-Encoding: chunked`, so no Content-Length tells its size."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def call(
    gateway: RunningGateway, method: str, path: str, data: Any, headers: dict[str, str] | None = None
) -> Any:
    """Status and body: parsed when JSON, else its text."""
    sent = {**(gateway.headers if headers is None else headers), "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http, http.request(method, gateway.url + path, data=data, headers=sent) as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, await r.text()


@pytest.mark.parametrize("gateway_overrides", [{"max_body_bytes": LIMIT}])
async def test_a_body_over_the_limit_is_a_413_declared_or_chunked(gateway: RunningGateway) -> None:
    big = b"[" + b"0," * LIMIT + b"0]"
    for method, path in ENDPOINTS:
        for data in (big, chunks(big)):
            status, body = await call(gateway, method, path, data)
            assert status == 413, (method, path, body)
            assert body == {
                "error": {
                    "message": f"request body is larger than the limit of {LIMIT} bytes",
                    "type": "invalid_request_error",
                    "code": "TOO_LARGE",
                }
            }
        status, _ = await call(gateway, method, path, chunks(b"[" + b"0," * (LIMIT // 3) + b"0]"))
        assert status == 200, (method, path)


@pytest.mark.parametrize("gateway_overrides", [{"max_body_bytes": LIMIT}])
async def test_a_caller_without_the_key_is_refused_before_its_body_counts(gateway: RunningGateway) -> None:
    status, body = await call(gateway, "GET", "/internal/sessions", b"x" * (2 * LIMIT), headers={})
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"


async def test_the_default_limit_applies(gateway: RunningGateway) -> None:
    assert gateway.settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    status, body = await call(gateway, "GET", "/internal/sessions", b" " * (DEFAULT_MAX_BODY_BYTES + 1))
    assert status == 413 and body["error"]["code"] == "TOO_LARGE"


@pytest.mark.parametrize("depth", [300, 100_000])
async def test_deeply_nested_bodies_are_never_a_5xx(gateway: RunningGateway, depth: int) -> None:
    """Nothing reads these bodies: a GET answers as without one, any other method is a 405 in the envelope."""
    bodies = [('{"a":' * depth + "1" + "}" * depth).encode(), ("[" * depth + "]" * depth).encode()]
    for method, path in [*ENDPOINTS, ("POST", "/internal/sessions"), ("PUT", "/metrics"), ("POST", "/nowhere")]:
        for data in bodies:
            status, body = await call(gateway, method, path, data)
            assert status < 500, (method, path, body)
            if method == "GET":
                assert status == 200, (method, path, body)
            else:
                assert status in (404, 405) and body["error"]["code"] in ("NOT_FOUND", "METHOD_NOT_ALLOWED")
