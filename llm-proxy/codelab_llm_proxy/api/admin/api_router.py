"""`GET /admin/deployments`: every deployment's circuit-breaker state (needs `X-Internal-Auth`)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request

from codelab_llm_proxy.services.routing.router import Router

router = APIRouter(tags=["admin"])


@router.get("/admin/deployments")
async def list_deployments(request: Request) -> dict[str, Any]:
    routing: Router = request.app.state.router
    return {"object": "list", "data": [asdict(row) for row in routing.health()]}
