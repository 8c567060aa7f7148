"""`GET /metrics`: Prometheus text exposition of this proxy's metrics (behind `X-Internal-Auth` like the rest)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from codelab_llm_proxy.services.observability import CONTENT_TYPE, ProxyMetrics

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    proxy_metrics: ProxyMetrics = request.app.state.metrics
    return Response(proxy_metrics.render(), media_type=CONTENT_TYPE)
