"""Pure ASGI middleware that observes every completion request from the outside: status, time to first byte,
duration, in-flight count; at the end it records the metrics and writes the request's one log line.

Watching the ASGI messages (instead of instrumenting the serving code) keeps the numbers right however the
serving path evolves (retries, failover, translation) and sees exactly what the client sees. Per chunk it costs one
branch in `send`; per request one log line (skipped cheaply when INFO is off) and a few histogram observations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from time import perf_counter
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codelab_common.request_id import current_request_id, new_request_id
from codelab_llm_proxy.services.observability.metrics import ProxyMetrics
from codelab_llm_proxy.services.observability.observation import (
    RequestObservation,
    end_observation,
    start_observation,
)

log = structlog.get_logger("codelab_llm_proxy.requests")
_stdlib_log = logging.getLogger("codelab_llm_proxy.requests")

OBSERVED_PATHS = ("/v1/chat/completions", "/v1/messages")
"""Completion endpoints (OpenAI- and Anthropic-shaped); everything else passes through untouched."""


class ObservabilityMiddleware:
    def __init__(
        self, app: ASGIApp, *, metrics: ProxyMetrics, paths: Iterable[str] = OBSERVED_PATHS, operation: str = "chat"
    ) -> None:
        self.app = app
        self._metrics = metrics
        self._paths = frozenset(paths)
        self._operation = operation

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self._paths:
            await self.app(scope, receive, send)
            return
        observation, token = start_observation(current_request_id.get() or new_request_id(), self._operation)
        in_flight = self._metrics.in_flight
        in_flight.inc()

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not observation.first_byte and message.get("body", b"")[:1] not in (b"", b":"):
                    observation.first_byte = perf_counter()  # a keep-alive comment (`:`) is no first token
            elif message["type"] == "http.response.start":
                observation.status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except BaseException:
            observation.status = observation.status or 500
            raise
        finally:
            observation.finished = perf_counter()
            in_flight.dec()
            end_observation(token)
            self._metrics.record(observation)
            _log_request(observation)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def request_log_fields(observation: RequestObservation) -> dict[str, Any]:
    """The fields of a request's log line (also what tests check)."""
    duration = observation.duration
    ttft = observation.ttft
    tokens_out = observation.output_tokens
    generating = duration - ttft if ttft is not None else duration
    fields: dict[str, Any] = {
        "request_id": observation.request_id,
        "model": observation.model,
        "provider": observation.provider,
        "deployment": observation.deployment,
        "status": observation.outcome_status,
        "stream": observation.stream,
        "ttft_ms": _ms(ttft),
        "duration_ms": _ms(duration),
        "overhead_ms": _ms(max(duration - observation.upstream_wait, 0.0)),
        "tokens_in": observation.tokens_in,
        "tokens_out": tokens_out,
        "tokens_per_s": round(tokens_out / generating, 1) if tokens_out and generating > 0 else None,
    }
    if observation.error_code:
        fields["error_code"] = observation.error_code
        fields["error"] = observation.error_message
    if observation.error_status and observation.status == 200:
        fields["in_band_error"] = True
    return fields


def _log_request(observation: RequestObservation) -> None:
    level = logging.WARNING if observation.outcome_status >= 500 else logging.INFO
    if _stdlib_log.isEnabledFor(level):
        log.log(level, "llm_request", **request_log_fields(observation))
