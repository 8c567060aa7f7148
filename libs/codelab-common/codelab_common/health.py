"""The open `/health` endpoint every service serves."""

from __future__ import annotations

from fastapi import APIRouter


def health_router(service: str) -> APIRouter:
    router = APIRouter()

    @router.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": service}

    return router
