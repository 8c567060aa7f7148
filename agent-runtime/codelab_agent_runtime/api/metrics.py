"""`GET /metrics`: Prometheus text (behind `X-Internal-Auth` unless `metrics_open`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from codelab_agent_runtime.core.metrics import AgentMetrics

router = APIRouter(tags=["internal"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    agent_metrics: AgentMetrics = request.app.state.metrics
    return agent_metrics.response()
