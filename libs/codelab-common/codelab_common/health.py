"""The open `/health` (the process is up) and `/ready` (its dependencies answer) endpoints every service serves.

`/health` answers as the seed's services do: `{"status": "healthy", "service": …, "version": …}`. `/ready` runs the
service's readiness checks at once, each bounded by `CHECK_TIMEOUT_S`, and answers 200 when all pass, or 503 with
each failing check's reason, so an orchestrator sends no traffic to an instance that could not serve it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

import aiohttp
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

log = structlog.get_logger(__name__)

HEALTH_PATHS = ("/health", "/ready")
"""Served without the internal key."""

CHECK_TIMEOUT_S = 2.0

Check = Callable[[Request], Awaitable[str | None]]
"""A readiness check: None when the dependency is usable, otherwise why not (one line, no secrets)."""


class Health(BaseModel):
    status: str = "healthy"
    service: str
    version: str


class Readiness(BaseModel):
    status: str
    """`ready`, or `not_ready` when any check failed."""
    service: str
    checks: dict[str, str]
    """Each check's name and `ok` or the reason it failed."""


def package_version(distribution: str) -> str:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def health_router(service: str, distribution: str, checks: Mapping[str, Check] | None = None) -> APIRouter:
    """`/health` and `/ready` for `service`, whose version is that of the installed `distribution`."""
    router = APIRouter(tags=["health"])
    health = Health(service=service, version=package_version(distribution))
    named = dict(checks or {})

    @router.get("/health")
    async def get_health() -> Health:
        return health

    @router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
    async def get_ready(request: Request) -> JSONResponse:
        outcomes = await asyncio.gather(*(_bounded(check(request)) for check in named.values()))
        results = {name: reason or "ok" for name, reason in zip(named, outcomes, strict=True)}
        ready = all(reason is None for reason in outcomes)
        body = Readiness(status="ready" if ready else "not_ready", service=service, checks=results)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    return router


async def _bounded(check: Awaitable[str | None]) -> str | None:
    try:
        return await asyncio.wait_for(check, CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:  # a failing check is a reason, never a 500; its message may hold a URL, so it is logged
        log.warning("readiness_check_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        return f"failed ({type(exc).__name__})"


async def next_hop_health(http: aiohttp.ClientSession, base_url: str) -> str | None:
    """The check of a service this one calls: its `/health` answers 200. `/ready` is open, so the answer names the
    hop by its check's name, never by its address."""
    try:
        async with http.get(f"{base_url.rstrip('/')}/health") as response:
            return None if response.status == 200 else f"answered {response.status} on /health"
    except aiohttp.ClientError as exc:
        return f"unreachable ({type(exc).__name__})"


async def tcp_reachable(url: str, default_port: int = 443) -> str | None:
    """None when a TCP connection to the URL's host and port opens."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or (80 if parts.scheme == "http" else default_port)
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        return f"{host}:{port} unreachable ({exc.strerror or type(exc).__name__})"
    writer.close()
    return None
