"""Request ids, the per-request log line, `GET /metrics`, and that no secret ever reaches a log line."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from codelab_common.logs import configure_logging
from codelab_common.request_id import valid_request_id
from codelab_common.testing import FakeOpenAI
from tests.fixtures.llm_proxy import RunningLLMProxy

USER = [{"role": "user", "content": "hello"}]
UPSTREAM_KEY = "sk-upstream-SECRET-0123456789abcdef"
UPSTREAM_KEY_ENV = "OBS_TEST_UPSTREAM_KEY"
CALLER_BEARER = "caller-bearer-SECRET-token-42"
WRONG_INTERNAL_KEY = "wrong-internal-SECRET-key-77"
IN_BAND_ERROR = (
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"fake-model",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"Half an"},"finish_reason":null}]}\n\n'
    b'data: {"error":{"message":"model melted","type":"server_error","code":null}}\n\n'
)


@pytest.fixture
def llm_proxy_models(fake_upstream: FakeOpenAI) -> list[dict[str, object]]:
    """The usual "fake-model", plus "keyed-model" whose upstream key sits in the environment."""
    common = {"provider": "openai-compatible", "upstream_model": "fake-model", "base_url": fake_upstream.base_url}
    return [
        {"name": "fake-model", "context_window": 8192, **common},
        {"name": "keyed-model", "context_window": 8192, "api_key_env": UPSTREAM_KEY_ENV, **common},
    ]


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Every log line at every level, rendered as the services render them (JSON lines)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("llm-proxy", "DEBUG")
    buffer = io.StringIO()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def request_lines(err: str) -> list[dict[str, Any]]:
    records = [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]
    return [r for r in records if r.get("event") == "llm_request"]


async def post(
    proxy: RunningLLMProxy, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{proxy.url}/v1/chat/completions", data=data, headers={**proxy.headers, **(headers or {})}
        ) as response,
    ):
        return response.status, await response.read(), response.headers


async def scrape(proxy: RunningLLMProxy, until: str | None = None) -> str:
    """`GET /metrics`; with `until`, re-scrape briefly until that text shows (a request is recorded as it ends)."""
    async with aiohttp.ClientSession(headers=proxy.headers) as session:
        for _ in range(50):
            async with session.get(f"{proxy.url}/metrics") as response:
                assert response.status == 200
                assert response.content_type == "text/plain"
                text = await response.text()
            if until is None or until in text:
                return text
            await asyncio.sleep(0.02)
    raise AssertionError(f"{until!r} never appeared in the metrics:\n{text}")


def sample(text: str, name: str, **labels: str) -> float:
    """The value of the one series `name` whose labels include `labels`."""
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    raise AssertionError(f"no series {name} with {labels}")


def test_only_printable_ids_of_at_most_128_characters_are_kept() -> None:
    assert valid_request_id(b"abc-123_X.y") == "abc-123_X.y"
    assert valid_request_id(b"x" * 128) == "x" * 128
    for bad in (b"", b"x" * 129, b"has space", b"tab\there", b"new\nline", "caf\u00e9".encode()):
        assert valid_request_id(bad) is None


async def test_a_callers_request_id_is_echoed_and_a_missing_or_bad_one_replaced(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_text("one")
    status, _, headers = await post(llm_proxy, {"model": "fake-model", "messages": USER}, {"X-Request-ID": "trace-77"})
    assert status == 200 and headers["X-Request-ID"] == "trace-77"

    llm_proxy.upstream.reply_text("two")
    _, _, made = await post(llm_proxy, {"model": "fake-model", "messages": USER})
    _, _, replaced = await post(llm_proxy, {"model": "fake-model", "messages": USER}, {"X-Request-ID": "x" * 129})
    for headers in (made, replaced):
        assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])
    assert made["X-Request-ID"] != replaced["X-Request-ID"]

    async with aiohttp.ClientSession() as session, session.get(f"{llm_proxy.url}/v1/models") as unauthorised:
        assert unauthorised.status == 401
        assert re.fullmatch(r"[0-9a-f]{32}", unauthorised.headers["X-Request-ID"])


async def test_metrics_show_a_stream_and_a_failure(llm_proxy: RunningLLMProxy) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{llm_proxy.url}/metrics") as response:
        assert response.status == 401

    llm_proxy.upstream.reply_text("The quick brown fox jumps over the lazy dog")
    status, events = await llm_proxy.stream(
        {"model": "fake-model", "messages": USER, "stream_options": {"include_usage": True}}
    )
    assert status == 200 and events[-1] == "[DONE]"
    llm_proxy.upstream.reply_error(400, "prompt too long")
    status, _ = await llm_proxy.stream({"model": "fake-model", "messages": USER})
    assert status == 400

    text = await scrape(llm_proxy, until='status="400"')
    model = {"gen_ai_request_model": "fake-model", "gen_ai_provider_name": "openai-compatible"}
    assert sample(text, "llm_proxy_requests_total", status="200", **model) == 1
    assert sample(text, "llm_proxy_requests_total", status="400", **model) == 1
    assert sample(text, "gen_ai_client_operation_duration_seconds_count", error_type="", **model) == 1
    assert sample(text, "gen_ai_client_operation_duration_seconds_count", error_type="upstream_rejected", **model) == 1
    assert sample(text, "gen_ai_server_time_to_first_token_seconds_count", **model) == 1
    assert sample(text, "gen_ai_server_time_per_output_token_seconds_count", **model) == 1
    assert sample(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="input", **model) == 10
    assert sample(text, "gen_ai_client_token_usage_sum", gen_ai_token_type="output", **model) == 5
    assert sample(text, "llm_proxy_overhead_seconds_count", **model) == 2
    assert sample(text, "llm_proxy_requests_in_flight") == 0
    assert sample(text, "llm_proxy_deployment_healthy", gen_ai_request_model="fake-model") == 1
    assert sample(text, "llm_proxy_deployment_circuit_state", gen_ai_request_model="fake-model", state="open") == 0


async def test_one_log_line_per_request_carries_its_figures(
    llm_proxy: RunningLLMProxy, captured_logs: io.StringIO
) -> None:
    llm_proxy.upstream.reply_text("The quick brown fox jumps over the lazy dog")
    body = {"model": "fake-model", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    status, answer, _ = await post(llm_proxy, body, {"X-Request-ID": "log-line-1"})
    assert status == 200 and answer.endswith(b"data: [DONE]\n\n")
    llm_proxy.upstream.reply_error(400, "prompt too long")
    status, _, _ = await post(llm_proxy, {"model": "fake-model", "messages": USER}, {"X-Request-ID": "log-line-2"})
    assert status == 400
    llm_proxy.upstream.replay(IN_BAND_ERROR)
    status, answer, _ = await post(llm_proxy, {**body, "stream_options": None}, {"X-Request-ID": "log-line-3"})
    assert status == 200 and b'"error"' in answer and b"[DONE]" not in answer
    await scrape(llm_proxy, until='status="502"')

    lines = {line["request_id"]: line for line in request_lines(captured_logs.getvalue())}
    assert set(lines) == {"log-line-1", "log-line-2", "log-line-3"}
    ok, failed, cut = lines["log-line-1"], lines["log-line-2"], lines["log-line-3"]
    assert ok["level"] == "info"
    assert (ok["model"], ok["provider"], ok["deployment"]) == ("fake-model", "openai-compatible", "fake-model")
    assert (ok["status"], ok["stream"], ok["tokens_in"], ok["tokens_out"]) == (200, True, 10, 5)
    assert 0 < ok["ttft_ms"] <= ok["duration_ms"]
    assert ok["tokens_per_s"] > 0 and 0 <= ok["overhead_ms"] <= ok["duration_ms"]
    assert (failed["status"], failed["stream"], failed["error_code"]) == (400, False, "upstream_rejected")
    assert "prompt too long" in failed["error"] and failed["ttft_ms"] is None
    assert cut["level"] == "warning" and cut["in_band_error"] is True
    assert (cut["status"], cut["stream"], cut["error_code"]) == (502, True, "upstream_error")
    assert "model melted" in cut["error"] and cut["ttft_ms"] > 0


async def test_no_key_or_authorization_value_reaches_any_log_line(
    llm_proxy: RunningLLMProxy, captured_logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPSTREAM_KEY_ENV, UPSTREAM_KEY)
    bearer = {"Authorization": f"Bearer {CALLER_BEARER}"}
    upstream = llm_proxy.upstream
    upstream.reply_text("streamed answer")
    upstream.reply_text("plain answer")
    upstream.reply_error(401, f"Incorrect API key provided: {UPSTREAM_KEY}")
    upstream.reply_error(400, "prompt too long")
    keyed = {"model": "keyed-model", "messages": USER}
    assert (await post(llm_proxy, {**keyed, "stream": True}, bearer))[0] == 200
    assert (await post(llm_proxy, keyed, bearer))[0] == 200
    assert (await post(llm_proxy, {**keyed, "stream": True}, bearer))[0] == 502
    assert (await post(llm_proxy, keyed, bearer))[0] == 400
    assert (await post(llm_proxy, {"model": "nope", "messages": USER}, bearer))[0] == 404
    assert (await post(llm_proxy, b"{not json", bearer))[0] == 400
    assert (await post(llm_proxy, keyed, {**bearer, "X-Internal-Auth": WRONG_INTERNAL_KEY}))[0] == 401
    await scrape(llm_proxy, until='status="400"')
    assert upstream.request_meta[0]["headers"]["authorization"] == f"Bearer {UPSTREAM_KEY}"

    err = captured_logs.getvalue()
    assert len(request_lines(err)) == 6, err
    for secret in (UPSTREAM_KEY, CALLER_BEARER, WRONG_INTERNAL_KEY, llm_proxy.api_key):
        assert secret not in err
