"""One user message, one trace: gateway → agent-runtime → llm-proxy → the scripted model, exported over OTLP/HTTP.

The services run as in every other test (real apps on loopback sockets) with `OTEL_EXPORTER_OTLP_ENDPOINT` set, so
spans travel the real exporter path to a small OTLP/HTTP receiver started here.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi import FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from codelab_common.logs import configure_logging
from codelab_common.tracing import Tracing, install_tracing, start_span
from tests.fixtures.gateway import RunningGateway, is_final_message


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    links: tuple[str, ...]
    attributes: dict[str, Any]


class OtlpReceiver:
    """Accepts `POST /v1/traces` (OTLP/HTTP, protobuf) on a thread of its own and keeps every span."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.take(ExportTraceServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"

    def take(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ExportedSpan(
                            service=resource["service.name"],
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            links=tuple(link.span_id.hex() for link in span.links),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )

    def named(self, service: str, name: str) -> list[ExportedSpan]:
        return [span for span in self.spans if span.service == service and span.name == name]


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture(autouse=True)
def otlp_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """Started before the services, so each app's tracing finds the endpoint in the environment."""
    receiver = OtlpReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    yield receiver
    receiver.server.shutdown()
    thread.join()


async def exported(receiver: OtlpReceiver, apps: list[Any], until: tuple[str, str]) -> list[ExportedSpan]:
    """Flush every app's spans until the span `until` (service, name) has arrived; the gateway ends a turn's span
    just after relaying its last frame."""
    tracings: list[Tracing] = [app.state.tracing for app in apps]
    for _ in range(50):
        for tracing in tracings:
            assert await asyncio.to_thread(tracing.flush)
        if receiver.named(*until):
            return receiver.spans
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {until} span; got {[(s.service, s.name) for s in receiver.spans]}")


async def test_one_user_message_is_one_trace_across_every_service(
    gateway: RunningGateway,
    agent_runtime: Any,
    llm_proxy: Any,
    otlp_receiver: OtlpReceiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("tests")
    gateway.upstream.reply_tool_calls(("read_file", {"path": "a.py"}))
    gateway.upstream.reply_text("It prints 1.")
    async with gateway.connect("traced") as client:
        await client.say("what does a.py do?")
        frames = await client.recv_until(lambda frame: frame["type"] == "tool_call")
        call = frames[-1]
        await client.send({"type": "tool_result", "call_id": call["call_id"], "result": {"content": "print(1)"}})
        await client.recv_until(is_final_message)

    apps = [gateway.app, agent_runtime.app, llm_proxy.app]
    spans = await exported(otlp_receiver, apps, until=("gateway", "turn"))

    [turn] = otlp_receiver.named("gateway", "turn")
    following = "GET /agent/sessions/{session_id}/events"  # the gateway following the session: not part of a turn
    spans = [span for span in spans if span.name != following]
    assert {span.trace_id for span in spans} == {turn.trace_id}
    assert {span.service for span in spans} == {"gateway", "agent-runtime", "llm-proxy"}
    assert turn.parent_id == "" and turn.attributes["codelab.session_id"] == "traced"
    assert turn.attributes["codelab.turn.outcome"] == "completed"

    by_id = {span.span_id: span for span in spans}
    [first_step] = otlp_receiver.named("gateway", "input user_message")
    [second_step] = otlp_receiver.named("gateway", "input tool_result")
    assert first_step.parent_id == second_step.parent_id == turn.span_id

    steps = otlp_receiver.named("agent-runtime", "POST /agent/sessions/{session_id}/input")
    assert sorted(by_id[step.parent_id].name for step in steps) == ["input tool_result", "input user_message"]
    assert all(step.kind == Span.SPAN_KIND_SERVER for step in steps)
    assert {step.attributes["codelab.session_id"] for step in steps} == {"traced"}
    sent_from = next(step for step in steps if by_id[step.parent_id] is first_step)
    answered_in = next(step for step in steps if by_id[step.parent_id] is second_step)

    [tool] = otlp_receiver.named("agent-runtime", "tool read_file")
    assert tool.parent_id == sent_from.span_id and tool.span_id in answered_in.links
    assert tool.attributes["codelab.tool.outcome"] == "ok"

    model_calls = otlp_receiver.named("agent-runtime", "chat fake-model")
    assert sorted(by_id[call.parent_id].span_id for call in model_calls) == sorted(
        [sent_from.span_id, answered_in.span_id]
    )
    proxied = otlp_receiver.named("llm-proxy", "POST /v1/chat/completions")
    assert sorted(span.parent_id for span in proxied) == sorted(call.span_id for call in model_calls)
    upstream_calls = otlp_receiver.named("llm-proxy", "chat fake-model")
    assert sorted(span.parent_id for span in upstream_calls) == sorted(span.span_id for span in proxied)

    sent_upstream = [meta["headers"].get("traceparent", "") for meta in gateway.upstream.request_meta]
    assert sorted(header.split("-")[2] for header in sent_upstream) == sorted(s.span_id for s in upstream_calls)

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    model_calls_logged = [line for line in lines if line["event"] == "model_call"]
    requests_logged = [line for line in lines if line["event"] == "llm_request"]
    assert len(model_calls_logged) == len(requests_logged) == 2
    for line in model_calls_logged + requests_logged:
        assert line["trace_id"] == turn.trace_id and line["span_id"] in by_id
    assert {line["session_id"] for line in model_calls_logged + requests_logged} == {"traced"}


def test_without_an_endpoint_nothing_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    app = FastAPI()
    tracing = install_tracing(app, "gateway")
    assert tracing.tracer is None and app.state.tracing is tracing
    assert app.user_middleware == []
    assert start_span("anything") is None
