"""Prometheus metrics of one gateway app (own registry, so several apps can live in one process, as in tests).

Counted per connection, per frame and per error. A frame sent to a client costs one dictionary lookup
and one counter increment; nothing is logged per frame. Gauges are kept by increments, so several worker processes
sum them in prometheus_client's multiprocess mode (`codelab_common.metrics`).
"""

from __future__ import annotations

from fastapi.responses import Response
from prometheus_client import Counter, Gauge

from codelab_common.metrics import app_registry, metrics_response


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = registry = app_registry()
        self.connections = Counter(
            "gateway_connections", "WebSocket connections accepted", ["dialect"], registry=registry
        )
        self.live_connections = Gauge(
            "gateway_live_connections", "WebSocket connections open now", registry=registry, multiprocess_mode="livesum"
        )
        self.following = Gauge(
            "gateway_following",
            "Connections following their session's events from agent-runtime now (an idle session's connection holds "
            "no stream)",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.reconnects = Counter(
            "gateway_reconnects",
            "Connections to a session that had a client on this gateway before (a return, or a replacement)",
            registry=registry,
        )
        self.resumes = Counter(
            "gateway_resumes", "Connections that named the last seq they hold (`last_seq`)", registry=registry
        )
        self.frames_in = Counter(
            "gateway_frames_received", "Inbound frames accepted, by type", ["type"], registry=registry
        )
        self.frames_out = Counter(
            "gateway_frames_sent", "Frames written to client sockets, by type", ["type"], registry=registry
        )
        self.errors = Counter(
            "gateway_errors_sent", "Error frames the gateway itself sent, by code", ["code"], registry=registry
        )
        self._sent: dict[str, Counter] = {}

    def frame_sent(self, frame_type: str) -> None:
        counter = self._sent.get(frame_type)
        if counter is None:
            counter = self._sent[frame_type] = self.frames_out.labels(frame_type)
        counter.inc()

    def response(self) -> Response:
        return metrics_response(self.registry)
