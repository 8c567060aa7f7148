"""Prometheus metrics of one gateway app (own registry, so several apps can live in one process, as in tests).

Counted per connection, per inbound frame, per step and per error, never per relayed token.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Counter(
            "gateway_connections", "WebSocket connections accepted", ["dialect"], registry=self.registry
        )
        self.live_connections = Gauge(
            "gateway_live_connections", "WebSocket connections open now", registry=self.registry
        )
        self.sessions = Gauge("gateway_sessions", "Sessions held in memory", registry=self.registry)
        self.frames_in = Counter(
            "gateway_frames_received", "Inbound frames accepted, by type", ["type"], registry=self.registry
        )
        self.errors = Counter(
            "gateway_errors_sent", "Error frames the gateway itself sent, by code", ["code"], registry=self.registry
        )
        self.steps = Counter(
            "gateway_agent_steps", "agent-runtime steps, by how they ended", ["status"], registry=self.registry
        )

    def track_sessions(self, count: Callable[[], int]) -> None:
        self.sessions.set_function(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
