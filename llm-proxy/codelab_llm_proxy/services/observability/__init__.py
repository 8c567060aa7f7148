"""Request observability: one log line and a few metrics per finished request, and `GET /metrics`."""

from codelab_llm_proxy.services.observability.metrics import (
    CONTENT_TYPE,
    DeploymentHealth,
    HealthSource,
    ProxyMetrics,
)
from codelab_llm_proxy.services.observability.middleware import ObservabilityMiddleware, request_log_fields
from codelab_llm_proxy.services.observability.observation import (
    RequestObservation,
    current_observation,
    observe_completion,
    observe_deployment,
    observe_error,
    observe_route,
    observe_upstream,
)

__all__ = [
    "CONTENT_TYPE",
    "DeploymentHealth",
    "HealthSource",
    "ObservabilityMiddleware",
    "ProxyMetrics",
    "RequestObservation",
    "current_observation",
    "observe_completion",
    "observe_deployment",
    "observe_error",
    "observe_route",
    "observe_upstream",
    "request_log_fields",
]
