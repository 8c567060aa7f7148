"""Log lines: tracebacks of logged exceptions, redacted like the rest, and the ids of the work in progress."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from codelab_common.logs import configure_logging
from codelab_common.tracing import Tracing, ending


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def _fail(secret: str) -> None:
    raise RuntimeError(f"upstream refused Bearer {secret}")


def test_a_logged_exception_carries_its_traceback_without_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("demo")
    secret = "-".join(("tok", "1234567890"))
    try:
        _fail(secret)
    except RuntimeError:
        structlog.get_logger("demo").exception("step_failed", session_id="s-1")
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    ours, foreign = _lines(capsys)
    for line in (ours, foreign):
        assert line["level"] == "error" and "exc_info" not in line
        assert line["exception"].startswith("Traceback (most recent call last):")
        assert 'in _fail\n    raise RuntimeError(f"upstream refused Bearer {secret}")' in line["exception"]
        assert line["exception"].endswith("RuntimeError: upstream refused Bearer [redacted]")
        assert secret not in json.dumps(line)
    assert ours["session_id"] == "s-1" and ours["event"] == "step_failed"


def test_lines_carry_the_bound_session_and_the_current_trace(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("demo")
    log = structlog.get_logger("demo")
    tracing = Tracing.exporting("demo", InMemorySpanExporter())
    assert tracing.tracer is not None
    span = tracing.tracer.start_span("step")
    with structlog.contextvars.bound_contextvars(session_id="s-2"), ending(span, current=True):
        log.info("inside")
    log.info("outside")

    inside, outside = _lines(capsys)
    context = span.get_span_context()
    assert inside["session_id"] == "s-2"
    assert inside["trace_id"] == f"{context.trace_id:032x}" and inside["span_id"] == f"{context.span_id:016x}"
    assert {"session_id", "trace_id", "span_id"}.isdisjoint(outside)
    tracing.shutdown()


def test_configured_secrets_are_blanked_whatever_they_look_like(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    upstream_key = "plainwordkey" + "42xyz"  # no `sk-`, no `Bearer`: only its value says it is secret
    monkeypatch.setenv("ACME_UPSTREAM_API_KEY", upstream_key)
    client_token = "t0k3n-of-alice-" + "9f8e7d"
    configure_logging("demo", secrets=(f"alice:{client_token},bob:another-token-value",))
    log = structlog.get_logger("demo")
    log.info("upstream said", body=f"invalid key {upstream_key} for {client_token}", nested={"x": [upstream_key]})
    uvicorn_log = logging.getLogger("uvicorn.error")
    monkeypatch.setattr(uvicorn_log, "level", logging.INFO)  # an in-process server earlier may have raised it
    monkeypatch.setattr(uvicorn_log, "disabled", False)
    uvicorn_log.info('%s - "WebSocket %s" [accepted]', "127.0.0.1:5000", f"/ws/s1?token={client_token}&last_seq=4")
    text = capsys.readouterr().err
    assert upstream_key not in text and client_token not in text and "another-token-value" not in text
    ours, foreign = (json.loads(line) for line in text.splitlines())
    assert ours["body"] == "invalid key [redacted] for [redacted]" and ours["nested"] == {"x": ["[redacted]"]}
    assert foreign["event"].endswith('"WebSocket /ws/s1?token=[redacted]&last_seq=[redacted]" [accepted]')


def test_a_long_value_is_logged_as_a_bounded_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("demo")
    structlog.get_logger("demo").warning("bad frame", frame="x" * 4_000_000)
    line = capsys.readouterr().err
    assert len(line) < 5_000
    assert json.loads(line)["frame"].endswith("… [3996000 more characters not logged]")


def test_a_clients_invalid_utf8_is_one_info_line_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("demo")
    try:
        b"\xff".decode()
    except UnicodeDecodeError:
        logging.getLogger("uvicorn.error").exception("Invalid UTF-8 sequence received from client.")
    (line,) = _lines(capsys)
    assert line["level"] == "info" and "exception" not in line
    assert line["event"] == "Invalid UTF-8 sequence received from client."
