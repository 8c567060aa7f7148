import asyncio
import json
import logging

import aiohttp
import pytest
import structlog
from fastapi import FastAPI, Request

from codelab_common import health
from codelab_common.auth import InternalAuthMiddleware
from codelab_common.health import health_router
from codelab_common.logs import configure_logging
from codelab_common.testing import serve_app


async def _fine(request: Request) -> str | None:
    return None


async def _broken(request: Request) -> str | None:
    raise ConnectionError("postgresql://user:hunter2@db/app refused")


async def _slow(request: Request) -> str | None:
    await asyncio.sleep(60)
    return None


def _app() -> FastAPI:
    app = FastAPI()
    app.include_router(health_router("demo", "codelab-common", {"fine": _fine, "broken": _broken, "slow": _slow}))

    @app.get("/private")
    async def private() -> dict[str, bool]:
        return {"ok": True}

    app.add_middleware(InternalAuthMiddleware, api_key="s3cret-key")
    return app


@pytest.mark.parametrize("headers", [{}, {"X-Internal-Auth": "wrong"}, {"X-Internal-Auth": ""}])
async def test_protected_endpoints_answer_401_without_the_key(headers: dict[str, str]) -> None:
    async with (
        serve_app(_app()) as url,
        aiohttp.ClientSession() as session,
        session.get(f"{url}/private", headers=headers) as response,
    ):
        body = await response.json()
    assert response.status == 401
    assert body["error"]["code"] == "UNAUTHORIZED"


async def test_health_is_open_and_the_key_opens_the_rest() -> None:
    async with serve_app(_app()) as url, aiohttp.ClientSession() as session:
        async with session.get(f"{url}/health") as health:
            assert health.status == 200
            assert await health.json() == {"status": "healthy", "service": "demo", "version": "0.1.0"}
        async with session.get(f"{url}/private", headers={"X-Internal-Auth": "s3cret-key"}) as private:
            assert private.status == 200


def test_secrets_never_reach_a_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("demo")
    structlog.get_logger().info(
        "calling upstream",
        api_key="sk-live-1234567890abcdef",
        headers={"Authorization": "Bearer abc.def.ghi", "X-Internal-Auth": "k3y-value"},
        note="sent Bearer tok123456789 to upstream",
    )
    logging.getLogger("uvicorn.error").warning("key sk-abcdefghijklmnop leaked?")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2
    for secret in ("sk-live-1234567890abcdef", "abc.def.ghi", "k3y-value", "tok123456789", "sk-abcdefghijklmnop"):
        assert all(secret not in line for line in lines)
    record = json.loads(lines[0])
    assert record["event"] == "calling upstream" and record["service"] == "demo"


async def test_ready_is_open_and_names_each_failing_check_without_its_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(health, "CHECK_TIMEOUT_S", 0.2)
    async with serve_app(_app()) as url, aiohttp.ClientSession() as session, session.get(f"{url}/ready") as ready:
        body = await ready.json()
    assert ready.status == 503
    assert body == {
        "status": "not_ready",
        "service": "demo",
        "checks": {"fine": "ok", "broken": "failed (ConnectionError)", "slow": "no answer within 0.2 s"},
    }
