"""The server span of each request: the caller's trace continued, the route as its name, probes left out, and every
span exported when the app shuts down."""

from __future__ import annotations

import aiohttp
from fastapi import FastAPI
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from codelab_common import tracing
from codelab_common.testing import serve_app

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def _app(exporter: InMemorySpanExporter) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str | None]:
        span = tracing.start_span("lookup", attributes={"item": item_id})
        tracing.finish(span, {})
        return {"traceparent": tracing.traceparent()}

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("no")

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": tracing.start_span("probe") is None}

    app.add_middleware(tracing.TracingMiddleware, tracing=tracing.Tracing.exporting("demo", exporter))
    return app


async def test_requests_continue_the_callers_trace_and_are_exported_at_shutdown() -> None:
    exporter = InMemorySpanExporter()
    async with serve_app(_app(exporter)) as url, aiohttp.ClientSession() as http:
        headers = {"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"}
        async with http.get(f"{url}/items/42", headers=headers) as response:
            current = (await response.json())["traceparent"]
        async with http.get(f"{url}/broken") as failed:
            assert failed.status == 500
        async with http.get(f"{url}/health") as health:
            assert await health.json() == {"ok": True}
        assert exporter.get_finished_spans() == ()

    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"GET /items/{item_id}", "lookup", "GET /broken"}
    server, lookup = spans["GET /items/{item_id}"], spans["lookup"]
    assert server.kind is SpanKind.SERVER and server.resource.attributes["service.name"] == "demo"
    assert f"{server.context.trace_id:032x}" == CALLER_TRACE and f"{server.parent.span_id:016x}" == CALLER_SPAN
    assert server.attributes["http.route"] == "/items/{item_id}"
    assert server.attributes["http.response.status_code"] == 200
    assert lookup.parent.span_id == server.context.span_id
    assert current == f"00-{CALLER_TRACE}-{server.context.span_id:016x}-01"
    assert spans["GET /broken"].status.status_code is StatusCode.ERROR
