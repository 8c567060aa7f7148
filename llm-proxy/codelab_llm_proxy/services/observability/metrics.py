"""The proxy's Prometheus metrics, named after OpenTelemetry's GenAI semantic conventions where one exists.

Each app gets its own `CollectorRegistry` (tests build many apps in one process). A finished request costs a
handful of histogram observations, never anything per chunk. Deployment health is read at scrape time through a
callback (`set_health_source`), so the circuit breakers own their state and the metrics never go stale; with
several workers (`PROMETHEUS_MULTIPROC_DIR`, see `codelab_common.metrics`) it is the answering worker's view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from codelab_common.metrics import app_registry, render
from codelab_llm_proxy.services.observability.observation import RequestObservation

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Bucket boundaries from the OpenTelemetry GenAI semantic conventions.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class DeploymentHealth(Protocol):
    """One deployment's state as the circuit breakers see it (the routing layer's health rows fit this)."""

    @property
    def model(self) -> str: ...
    @property
    def deployment(self) -> str: ...
    @property
    def state(self) -> str:
        """`closed` (in rotation), `half_open` (being probed) or `open` (out of rotation)."""
        ...


HealthSource = Callable[[], Iterable[DeploymentHealth]]
HEALTHY_STATES = frozenset({"closed"})
CIRCUIT_STATES = ("closed", "half_open", "open")


class _DeploymentHealthCollector(Collector):
    def __init__(self) -> None:
        self.source: HealthSource | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        healthy = GaugeMetricFamily(
            "llm_proxy_deployment_healthy",
            "1 when the deployment is in rotation (circuit closed), else 0",
            labels=["gen_ai_request_model", "deployment"],
        )
        state = GaugeMetricFamily(
            "llm_proxy_deployment_circuit_state",
            "1 for the circuit breaker's current state of the deployment",
            labels=["gen_ai_request_model", "deployment", "state"],
        )
        for entry in self.source() if self.source is not None else ():
            healthy.add_metric([entry.model, entry.deployment], 1.0 if entry.state in HEALTHY_STATES else 0.0)
            for name in CIRCUIT_STATES:
                state.add_metric([entry.model, entry.deployment, name], 1.0 if entry.state == name else 0.0)
        yield healthy
        yield state


class ProxyMetrics:
    """Every metric of one app, in its own registry; `record(observation)` once per finished request."""

    def __init__(self) -> None:
        self.registry = app_registry()
        labels = ["gen_ai_operation_name", "gen_ai_request_model", "gen_ai_provider_name"]
        self.operation_duration = Histogram(
            "gen_ai_client_operation_duration_seconds",
            "Duration of a chat completion as the proxy's client sees it",
            [*labels, "error_type"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per request, by gen_ai_token_type (input or output)",
            [*labels, "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.time_to_first_token = Histogram(
            "gen_ai_server_time_to_first_token_seconds",
            "Time from the request's arrival to the first streamed chunk sent to the client",
            labels,
            buckets=TTFT_BUCKETS,
            registry=self.registry,
        )
        self.time_per_output_token = Histogram(
            "gen_ai_server_time_per_output_token_seconds",
            "Time per output token after the first one (streams)",
            labels,
            buckets=TPOT_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter(
            "llm_proxy_requests",
            "Finished requests by model, provider and status (an in-band stream error counts with its status)",
            ["gen_ai_request_model", "gen_ai_provider_name", "status"],
            registry=self.registry,
        )
        self.overhead = Histogram(
            "llm_proxy_overhead_seconds",
            "Time the proxy spent on a request that was not spent waiting on the provider",
            ["gen_ai_request_model", "gen_ai_provider_name"],
            buckets=OVERHEAD_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "llm_proxy_requests_in_flight",
            "Requests being served right now",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self._health = _DeploymentHealthCollector()
        self.registry.register(self._health)

    def set_health_source(self, source: HealthSource | None) -> None:
        """Wire the circuit breakers in: `source()` lists every deployment's state at scrape time."""
        self._health.source = source

    def record(self, observation: RequestObservation) -> None:
        model, provider = observation.model, observation.provider
        status = observation.outcome_status
        error_type = observation.error_code or (str(status) if status >= 400 else "")
        labels = (observation.operation, model, provider)
        duration = observation.duration
        self.requests.labels(model, provider, str(status)).inc()
        self.operation_duration.labels(*labels, error_type).observe(duration)
        self.overhead.labels(model, provider).observe(max(duration - observation.upstream_wait, 0.0))
        if observation.tokens_in is not None:
            self.token_usage.labels(*labels, "input").observe(observation.tokens_in)
        output = observation.output_tokens
        if output is not None:
            self.token_usage.labels(*labels, "output").observe(output)
        ttft = observation.ttft
        if ttft is not None:
            self.time_to_first_token.labels(*labels).observe(ttft)
            if output and output > 1:
                self.time_per_output_token.labels(*labels).observe((duration - ttft) / (output - 1))

    def render(self) -> bytes:
        return render(self.registry, process_local=[self._health])
