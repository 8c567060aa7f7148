"""OpenTelemetry traces for every service: spans exported over OTLP/HTTP, or nothing at all.

One trace follows one user message. The gateway starts it when the `user_message` frame arrives, and each hop
passes it on in the W3C `traceparent` header: gateway → agent-runtime (each step) → llm-proxy (each model call) →
the model server. Spans are exported only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard `OTEL_*`
variables tune the exporter, `OTEL_TRACES_SAMPLER` the sampling); without it no SDK tracer provider exists, no
middleware is installed, and `start_span` returns None at its first line.

Each app gets its own tracer provider, named after its service, so several services can share one process (as in
tests). While a request is served, `TracingMiddleware` makes its server span current and publishes the app's tracer
in a context variable, so code deep inside a service (llm-proxy's upstream call, agent-runtime's model call) opens
child spans with `start_span` without being handed a tracer. Spans are never made current inside a streamed
body's generator; spans that outlive a request (the gateway's turn, a tool call's round trip) name their parent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACEPARENT = "traceparent"
UNTRACED_PATHS = ("/health", "/ready", "/metrics")
"""Probes and scrapes: frequent, and no part of any user's message."""

NO_NATIVE_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""For `FastAPI(telemetry=...)`: FastAPI's built-in OpenTelemetry looks up the global providers (reading the
environment) on every request even when nothing is configured; the services trace with `TracingMiddleware`."""

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACE_HEADERS = (b"traceparent", b"tracestate")
_current_tracer: ContextVar[Tracer | None] = ContextVar("codelab_tracer", default=None)


class Tracing:
    """One app's tracing: `tracer` is None when spans are not exported."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self._provider = provider
        self.tracer: Tracer | None = provider.get_tracer("codelab") if provider is not None else None

    @classmethod
    def from_environment(cls, service: str) -> Tracing:
        """Spans exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, otherwise none."""
        if not os.environ.get(ENDPOINT_ENV):
            return cls()
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls.exporting(service, OTLPSpanExporter())

    @classmethod
    def exporting(cls, service: str, exporter: SpanExporter) -> Tracing:
        """Spans of `service` handed to `exporter` in batches, from a background thread."""
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}), shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Export every finished span now (blocks; call it from a thread inside an event loop)."""
        return self._provider is None or self._provider.force_flush(int(timeout_s * 1000))

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()


def install_tracing(app: FastAPI, service: str) -> Tracing:
    """Trace `app`'s requests when the environment asks for it; call after the app's other middleware, so the
    server span covers them too. The tracing is kept as `app.state.tracing`."""
    tracing = Tracing.from_environment(service)
    if tracing.enabled:
        app.add_middleware(TracingMiddleware, tracing=tracing)
    app.state.tracing = tracing
    return tracing


class TracingMiddleware:
    """Pure ASGI middleware: a server span per HTTP request, the caller's `traceparent` its parent, current while
    the app runs (the streamed body included). WebSocket connections get no span (a turn is not a connection), only
    the tracer for `start_span`. When the app shuts down, its remaining spans are exported before the server is
    told it is done."""

    def __init__(self, app: ASGIApp, *, tracing: Tracing, untraced_paths: tuple[str, ...] = UNTRACED_PATHS) -> None:
        if tracing.tracer is None:
            raise ValueError("TracingMiddleware needs a tracing that exports spans")
        self.app = app
        self._tracing = tracing
        self._tracer: Tracer = tracing.tracer
        self._untraced = frozenset(untraced_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._flush_before_shutdown(send))
            return
        if kind != "http" or scope["path"] in self._untraced:
            token = _current_tracer.set(self._tracer if kind == "websocket" else None)
            try:
                await self.app(scope, receive, send)
            finally:
                _current_tracer.reset(token)
            return
        await self._traced(scope, receive, send)

    def _flush_before_shutdown(self, send: Send) -> Send:
        """The server stops once the app reports its shutdown, so the spans are exported before that message."""

        async def send_after_export(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await asyncio.to_thread(self._tracing.shutdown)
            await send(message)

        return send_after_export

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        parent = _PROPAGATOR.extract(
            {k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in _TRACE_HEADERS}
        )
        span = self._tracer.start_span(
            f"{method} {path}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path},
        )
        status = 0

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        tracer_token = _current_tracer.set(self._tracer)
        context_token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, send_observed)
        except Exception as exc:
            span.set_status(StatusCode.ERROR, type(exc).__name__)
            raise
        finally:
            otel_context.detach(context_token)
            _current_tracer.reset(tracer_token)
            route = getattr(scope.get("route"), "path", None)
            if route:
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
            if status:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(StatusCode.ERROR)
            span.end()


def start_span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, AttributeValue] | None = None,
    parent: Span | otel_context.Context | None = None,
    start_time_ns: int | None = None,
    links: list[Link] | None = None,
) -> Span | None:
    """A span of the app serving the current request or connection, a child of `parent` (a span, or a context;
    default: the current span); None when that app does not trace. It is not made current; the caller ends it
    (`ending`, `finish`)."""
    tracer = _current_tracer.get()
    if tracer is None:
        return None
    if isinstance(parent, Span):
        parent = trace.set_span_in_context(parent, otel_context.Context())
    return tracer.start_span(
        name, context=parent, kind=kind, attributes=attributes, start_time=start_time_ns, links=links
    )


def new_trace() -> otel_context.Context:
    """An empty context: a span started with it as parent begins a trace of its own."""
    return otel_context.Context()


@contextmanager
def ending(span: Span | None, *, current: bool = False) -> Iterator[None]:
    """End `span` on leaving, marked failed when an exception leaves (with its type only: messages may hold
    payloads; the failure's log line has the details and the trace id). A closed generator is no failure.

    `current` makes the span current inside (log lines carry its ids, `start_span` parents on it): only in a plain
    coroutine, never around a generator's `yield`, whose resumption may run in another context."""
    if span is None:
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(span)) if current else None
    try:
        yield
    except Exception as exc:
        span.set_status(StatusCode.ERROR, type(exc).__name__)
        raise
    finally:
        if token is not None:
            otel_context.detach(token)
        span.end()


def note(span: Span | None, attributes: Mapping[str, AttributeValue]) -> None:
    if span is not None:
        span.set_attributes(attributes)


def finish(span: Span | None, attributes: Mapping[str, AttributeValue], *, error: str | None = None) -> None:
    """Set `span`'s last attributes and end it; `error` marks it failed, for that reason."""
    if span is None:
        return
    span.set_attributes(attributes)
    if error is not None:
        span.set_status(StatusCode.ERROR, error)
    span.end()


def trace_headers(span: Span | None) -> dict[str, str]:
    """The headers that carry `span`'s context to the next hop (empty without a span)."""
    headers: dict[str, str] = {}
    if span is not None:
        _PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))
    return headers


def traceparent(span: Span | None = None) -> str | None:
    """The W3C `traceparent` of `span` (default: the current span), None when there is no valid one."""
    context = (span or trace.get_current_span()).get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def context_of(value: str | None) -> otel_context.Context | None:
    """The context a stored `traceparent` names, to parent a span on; None for None."""
    return None if value is None else _PROPAGATOR.extract({TRACEPARENT: value})


def link_from_current(span: Span | None) -> None:
    """Link the current span (the request's server span) to `span`, a span of another request's work."""
    current = trace.get_current_span()
    if span is not None and current.is_recording():
        current.add_link(span.get_span_context())


def annotate(attributes: Mapping[str, AttributeValue]) -> None:
    """Set attributes on the current span (the request's server span), if one records."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)
