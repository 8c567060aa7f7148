"""Bad requests, auth, unknown models and every upstream failure, each answered in OpenAI's error shape."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from codelab_common.testing import FakeOpenAI, free_port
from tests.fixtures.llm_proxy import RunningLLMProxy

USER = [{"role": "user", "content": "hello"}]


@pytest.fixture
def llm_proxy_models(fake_upstream: FakeOpenAI) -> list[dict[str, object]]:
    # One try per request: these tests check how each single upstream failure is answered (retries and failover
    # are covered in test_llm_proxy_routing.py).
    base = {
        "provider": "openai-compatible",
        "context_window": 4096,
        "upstream_model": "fake-model",
        "retry": {"max_attempts": 1},
    }
    return [
        {**base, "name": "fake-model", "base_url": fake_upstream.base_url, "tool_parser": "json"},
        {**base, "name": "slow-model", "base_url": fake_upstream.base_url, "read_timeout_s": 0.3},
        {**base, "name": "down-model", "base_url": f"http://127.0.0.1:{free_port()}/v1", "connect_timeout_s": 2},
        {**base, "name": "renamed", "base_url": fake_upstream.base_url},
    ]


def assert_error(body: Any, code: str | None = None, *, contains: str = "") -> None:
    assert set(body) == {"error"}
    error = body["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and isinstance(error["code"], str)
    if code:
        assert error["code"] == code
    assert contains.lower() in error["message"].lower()


INVALID_BODIES = [
    (b"{not json", "not valid json"),
    (b"[1, 2]", "json object"),
    (b"", "not valid json"),
    (orjson.dumps({"model": "fake-model"}), "messages"),
    (orjson.dumps({"messages": USER}), "model"),
    (orjson.dumps({"model": "fake-model", "messages": []}), "messages"),
    (orjson.dumps({"model": "fake-model", "messages": "hello"}), "messages"),
    (orjson.dumps({"model": "fake-model", "messages": [{"role": "robot", "content": "x"}]}), "messages.0"),
    (orjson.dumps({"model": "fake-model", "messages": [{"role": "user"}]}), "content"),
    (orjson.dumps({"model": "fake-model", "messages": [{"role": "tool", "content": "x"}]}), "tool_call_id"),
    (orjson.dumps({"model": "fake-model", "messages": USER, "temperature": "hot"}), "temperature"),
    (orjson.dumps({"model": "fake-model", "messages": USER, "temperature": 7}), "temperature"),
    (orjson.dumps({"model": "fake-model", "messages": USER, "stream": "yes"}), "stream"),
    (orjson.dumps({"model": "fake-model", "messages": USER, "max_tokens": 0}), "max_tokens"),
    (orjson.dumps({"model": "fake-model", "messages": USER, "tools": [{"type": "function"}]}), "tools.0"),
    (orjson.dumps({"model": "fake-model", "messages": USER, "tool_choice": "sometimes"}), "tool_choice"),
    (orjson.dumps({"model": 5, "messages": USER}), "model"),
]


async def test_invalid_body_is_a_400_and_never_reaches_the_upstream(llm_proxy: RunningLLMProxy) -> None:
    for body, mentions in INVALID_BODIES:
        status, answer = await llm_proxy.chat(body)
        assert status == 400, body
        assert_error(answer, "invalid_request", contains=mentions)
        assert answer["error"]["type"] == "invalid_request_error"
    assert llm_proxy.upstream.requests == []


async def test_unknown_model_is_a_404_naming_the_available_ones(llm_proxy: RunningLLMProxy) -> None:
    for stream in (False, True):
        status, answer = await llm_proxy.chat({"model": "gpt-17", "messages": USER, "stream": stream})
        assert status == 404
        assert_error(answer, "model_not_found", contains="gpt-17")
        assert "fake-model" in answer["error"]["message"]
    assert llm_proxy.upstream.requests == []


PROTECTED = [
    ("GET", "/v1/models"),
    ("GET", "/v1/llm/models"),
    ("GET", "/v1/models/fake-model"),
    ("POST", "/v1/chat/completions"),
]


async def test_protected_endpoints_need_the_internal_key(llm_proxy: RunningLLMProxy) -> None:
    body = orjson.dumps({"model": "fake-model", "messages": USER})
    async with aiohttp.ClientSession() as session:
        for method, path in PROTECTED:
            for headers in ({}, {"X-Internal-Auth": "wrong-key"}, {"Authorization": "Bearer wrong-key"}):
                async with session.request(method, f"{llm_proxy.url}{path}", data=body, headers=headers) as response:
                    assert response.status == 401, (method, path, headers)
                    assert_error(await response.json(), "UNAUTHORIZED")
    assert llm_proxy.upstream.requests == []


async def test_health_is_open(llm_proxy: RunningLLMProxy) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{llm_proxy.url}/health") as response:
        assert response.status == 200
        assert (await response.json()) == {"status": "healthy", "service": "llm-proxy", "version": "0.1.0"}


async def test_public_name_maps_to_the_upstream_model(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_text("hi")
    status, answer = await llm_proxy.chat({"model": "renamed", "messages": USER})
    assert status == 200 and answer["model"] == "renamed"
    assert llm_proxy.upstream.requests[-1]["model"] == "fake-model"


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_down_is_a_502(llm_proxy: RunningLLMProxy, stream: bool) -> None:
    status, answer = await llm_proxy.chat({"model": "down-model", "messages": USER, "stream": stream})
    assert status == 502
    assert_error(answer, "upstream_error", contains="cannot reach")


@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_500_is_a_502_with_its_message(llm_proxy: RunningLLMProxy, stream: bool) -> None:
    llm_proxy.upstream.reply_error(500, "CUDA out of memory")
    status, answer = await llm_proxy.chat({"model": "fake-model", "messages": USER, "stream": stream})
    assert status == 502
    assert_error(answer, "upstream_error", contains="CUDA out of memory")


@pytest.mark.parametrize(("upstream_status", "stream"), [(400, False), (400, True), (429, False)])
async def test_upstream_4xx_keeps_its_status_and_message(
    llm_proxy: RunningLLMProxy, upstream_status: int, stream: bool
) -> None:
    message = "the request exceeds the available context size (9000 tokens > 8192)"
    llm_proxy.upstream.reply_error(upstream_status, message)
    status, answer = await llm_proxy.chat({"model": "fake-model", "messages": USER, "stream": stream})
    assert status == upstream_status
    assert_error(answer, contains=message)


async def test_upstream_rejecting_credentials_is_a_502_not_our_401(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_error(401, "invalid api key")
    status, answer = await llm_proxy.chat({"model": "fake-model", "messages": USER})
    assert status == 502
    assert_error(answer, "upstream_error", contains="credentials")


@pytest.mark.parametrize("stream", [False, True])
async def test_silent_upstream_is_a_504(llm_proxy: RunningLLMProxy, stream: bool) -> None:
    llm_proxy.upstream.reply_text("too late", delay=1.0)
    status, answer = await llm_proxy.chat({"model": "slow-model", "messages": USER, "stream": stream})
    assert status == 504
    assert_error(answer, "upstream_timeout", contains="0.3 s")


async def test_failure_after_the_stream_started_is_an_in_band_error_without_done(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_text("first words then silence", chunk_delay=1.0)
    status, events = await llm_proxy.stream({"model": "slow-model", "messages": USER})
    assert status == 200
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "[DONE]" not in events
    assert_error(events[-1], "upstream_timeout")


async def test_client_disconnect_cancels_the_upstream_request(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_text("word " * 200, chunk_delay=0.05, chunk_size=5)
    service = llm_proxy.app.state.chat_completions  # type: ignore[attr-defined]
    body = orjson.dumps({"model": "fake-model", "messages": USER, "stream": True})
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{llm_proxy.url}/v1/chat/completions", data=body, headers=llm_proxy.headers)
        assert response.status == 200
        await response.content.readline()
        assert service.in_flight == 1
        response.close()
    for _ in range(100):
        if not service.in_flight:
            break
        await asyncio.sleep(0.02)
    assert service.in_flight == 0, "the relay (and with it the upstream request) stops within moments"


@pytest.mark.parametrize("stream", [False, True])
async def test_client_giving_up_before_the_first_byte_cancels_the_request(
    llm_proxy: RunningLLMProxy, stream: bool
) -> None:
    llm_proxy.upstream.reply_text("slow answer", delay=1.0)
    service = llm_proxy.app.state.chat_completions  # type: ignore[attr-defined]
    body = orjson.dumps({"model": "fake-model", "messages": USER, "stream": stream})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.3)) as session:
        with pytest.raises(TimeoutError):
            await session.post(f"{llm_proxy.url}/v1/chat/completions", data=body, headers=llm_proxy.headers)
    for _ in range(25):
        if not service.in_flight:
            break
        await asyncio.sleep(0.02)
    assert service.in_flight == 0, "cancelled at the disconnect, not when the upstream answers a second later"
