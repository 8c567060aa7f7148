"""Keep-alive comments on llm-proxy's streams, the start of a stream whose first chunk is slow, and disconnects.

The keep-alive interval is set short (0.1 s) and the scripted upstream pauses longer: while the proxy waits for the
upstream's next chunk, or holds text back because it may be a tool call, the client gets `: keep-alive` comments;
the OpenAI and Anthropic SDKs read such streams unchanged. A client that leaves closes the upstream request at once,
also while the proxy is still waiting for the first chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam

from codelab_common.sse import KEEP_ALIVE, iter_sse
from codelab_common.testing import FakeOpenAI, ScriptedReply, serve_app
from codelab_llm_proxy.core.config import Settings
from codelab_llm_proxy.main import create_app
from tests.fixtures.llm_proxy import LLM_PROXY_TEST_KEY, RunningLLMProxy, write_models_file

INTERVAL = 0.1
USER = [{"role": "user", "content": "hello"}]
SDK_USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
READ_FILE = {
    "type": "function",
    "function": {
        "name": "read_file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}


@pytest.fixture
async def proxy(fake_upstream: FakeOpenAI, tmp_path: Path) -> AsyncIterator[RunningLLMProxy]:
    common = {"base_url": fake_upstream.base_url, "upstream_model": "fake-model", "context_window": 8192}
    models = [
        {"name": "m", **common, "retry": {"max_attempts": 1}},
        {"name": "json-m", **common, "retry": {"max_attempts": 1}, "tool_parser": "json"},
    ]
    settings = Settings(
        internal_api_key=LLM_PROXY_TEST_KEY,  # type: ignore[arg-type]
        models_file=write_models_file(tmp_path / "models.yaml", models),
        sse_keep_alive_s=INTERVAL,
    )
    app = create_app(settings)
    async with serve_app(app) as url:
        yield RunningLLMProxy(url=url, api_key=LLM_PROXY_TEST_KEY, upstream=fake_upstream, app=app)


async def raw_stream(p: RunningLLMProxy, body: dict[str, Any], path: str = "/v1/chat/completions") -> tuple[int, bytes]:
    headers = {**p.headers, "x-api-key": p.api_key}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{p.url}{path}", data=orjson.dumps({**body, "stream": True}), headers=headers) as response,
    ):
        return response.status, await response.read()


async def events_of(raw: bytes) -> list[Any]:
    async def lines() -> AsyncIterator[bytes]:
        for line in raw.splitlines(keepends=True):
            yield line

    return [e.data if e.data == "[DONE]" else orjson.loads(e.data) async for e in iter_sse(lines())]


def text_of(events: list[Any]) -> str:
    return "".join(c["delta"].get("content") or "" for e in events if isinstance(e, dict) for c in e.get("choices", []))


async def test_a_pause_between_chunks_gets_keep_alives(proxy: RunningLLMProxy) -> None:
    proxy.upstream.reply_text("slow words", chunk_size=5, chunk_delay=0.35)
    status, raw = await raw_stream(proxy, {"model": "m", "messages": USER})
    assert status == 200 and raw.count(KEEP_ALIVE) >= 4, raw
    assert raw.index(KEEP_ALIVE) > raw.index(b"data: "), "the first chunk came at once: no comment before it"
    events = await events_of(raw)
    assert text_of(events) == "slow words" and events[-1] == "[DONE]"


async def test_text_held_back_as_a_possible_tool_call_gets_keep_alives(proxy: RunningLLMProxy) -> None:
    call = '{"name": "read_file", "arguments": {"path": "main.py"}}'
    proxy.upstream.reply_text(call, chunk_size=12, chunk_delay=0.12)
    status, raw = await raw_stream(proxy, {"model": "json-m", "messages": USER, "tools": [READ_FILE]})
    assert status == 200 and raw.count(KEEP_ALIVE) >= 3, "the parser held the call back for ~0.6 s"
    events = await events_of(raw)
    deltas = [c["delta"] for e in events if isinstance(e, dict) for c in e["choices"]]
    assert [d["tool_calls"][0]["function"]["name"] for d in deltas if d.get("tool_calls", [{}])[0].get("id")] == [
        "read_file"
    ]


async def test_a_slow_first_chunk_starts_the_stream_with_a_comment(proxy: RunningLLMProxy) -> None:
    proxy.upstream.replies.append(ScriptedReply(text="late but fine", delay=0.45))
    started = time.perf_counter()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{proxy.url}/v1/chat/completions",
            data=orjson.dumps({"model": "m", "messages": USER, "stream": True}),
            headers=proxy.headers,
        ) as response,
    ):
        assert response.status == 200
        assert await response.content.readuntil(b"\n\n") == KEEP_ALIVE
        assert time.perf_counter() - started < 0.3, "headers and a comment after one interval, not after the answer"
        rest = await response.read()
    assert rest.count(KEEP_ALIVE) >= 2
    assert text_of(await events_of(rest)) == "late but fine"
    assert await ttft_sum(proxy) >= 0.4, "the time to first token counts to the first chunk, not the comment"


async def test_a_failure_after_the_stream_started_waiting_is_in_band(proxy: RunningLLMProxy) -> None:
    proxy.upstream.replies.append(ScriptedReply(status=503, error_message="still loading", delay=0.3))
    status, raw = await raw_stream(proxy, {"model": "m", "messages": USER})
    assert status == 200 and raw.startswith(KEEP_ALIVE)
    events = await events_of(raw)
    assert "[DONE]" not in events
    assert events[-1]["error"]["code"] == "upstream_error" and "still loading" in events[-1]["error"]["message"]


async def test_a_fast_failure_keeps_its_status(proxy: RunningLLMProxy) -> None:
    proxy.upstream.reply_error(503, "overloaded")
    status, raw = await raw_stream(proxy, {"model": "m", "messages": USER})
    assert status == 502 and orjson.loads(raw)["error"]["code"] == "upstream_error"


async def test_the_anthropic_front_sends_keep_alives_too(proxy: RunningLLMProxy) -> None:
    proxy.upstream.reply_text("slow words", chunk_size=5, chunk_delay=0.35)
    body = {"model": "m", "max_tokens": 50, "messages": USER}
    status, raw = await raw_stream(proxy, body, "/v1/messages")
    assert status == 200 and raw.count(KEEP_ALIVE) >= 4
    assert b"event: message_stop" in raw


async def test_both_sdks_read_streams_with_keep_alives(proxy: RunningLLMProxy) -> None:
    proxy.upstream.reply_text("slow words", chunk_size=5, chunk_delay=0.25)
    proxy.upstream.reply_text("slow words", chunk_size=5, chunk_delay=0.25)
    async with openai.AsyncOpenAI(base_url=f"{proxy.url}/v1", api_key=proxy.api_key, max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(model="m", messages=SDK_USER, stream=True)
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert "".join(pieces) == "slow words"
    async with (
        anthropic.AsyncAnthropic(base_url=proxy.url, api_key=proxy.api_key, max_retries=0) as claude,
        claude.messages.stream(model="m", max_tokens=50, messages=[{"role": "user", "content": "hello"}]) as answer,
    ):
        text = "".join([piece async for piece in answer.text_stream])
    assert text == "slow words"


async def test_a_client_leaving_mid_answer_closes_the_upstream_request_at_once(proxy: RunningLLMProxy) -> None:
    proxy.upstream.reply_text("word " * 200, chunk_size=5, chunk_delay=0.05)
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{proxy.url}/v1/chat/completions",
            data=orjson.dumps({"model": "m", "messages": USER, "stream": True}),
            headers=proxy.headers,
        )
        await response.content.readuntil(b"\n\n")
        left = time.monotonic()
        response.close()
    await until(lambda: bool(proxy.upstream.closed_early))
    assert proxy.upstream.closed_early[0] - left < 0.5


async def test_a_client_leaving_while_the_first_chunk_is_awaited_closes_the_upstream_request(
    proxy: RunningLLMProxy,
) -> None:
    proxy.upstream.replies.append(ScriptedReply(text="never sent", delay=5.0))
    service = proxy.app.state.chat_completions  # type: ignore[attr-defined]
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{proxy.url}/v1/chat/completions",
            data=orjson.dumps({"model": "m", "messages": USER, "stream": True}),
            headers=proxy.headers,
        )
        assert await response.content.readuntil(b"\n\n") == KEEP_ALIVE
        left = time.monotonic()
        response.close()
    await until(lambda: bool(proxy.upstream.closed_early))
    assert proxy.upstream.closed_early[0] - left < 0.5
    await until(lambda: service.in_flight == 0)


async def ttft_sum(p: RunningLLMProxy) -> float:
    """Seconds summed in the time-to-first-token histogram (it is observed once the request's log line is out)."""
    async with aiohttp.ClientSession(headers=p.headers) as http:
        for _ in range(100):
            async with http.get(f"{p.url}/metrics") as response:
                for line in (await response.text()).splitlines():
                    if line.startswith("gen_ai_server_time_to_first_token_seconds_sum"):
                        return float(line.rsplit(" ", 1)[1])
            await asyncio.sleep(0.02)
    raise AssertionError("no time-to-first-token sample")


async def until(condition: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_client_leaving_a_whole_answer_read_as_a_stream_closes_the_upstream(
    fake_upstream: FakeOpenAI, tmp_path: Path
) -> None:
    """`stream_upstream` (the embedded model): llama.cpp only stops generating when a *stream* is closed."""
    entry = {"name": "s", "base_url": fake_upstream.base_url, "context_window": 8192, "stream_upstream": True}
    settings = Settings(
        internal_api_key=LLM_PROXY_TEST_KEY,  # type: ignore[arg-type]
        models_file=write_models_file(tmp_path / "streamed.yaml", [entry]),
    )
    fake_upstream.reply_text("word " * 200, chunk_size=5, chunk_delay=0.05)
    async with serve_app(create_app(settings)) as url:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as http:
            with pytest.raises(TimeoutError):
                await http.post(
                    f"{url}/v1/chat/completions",
                    data=orjson.dumps({"model": "s", "messages": USER}),
                    headers={"X-Internal-Auth": LLM_PROXY_TEST_KEY},
                )
        left = time.monotonic()
        await until(lambda: bool(fake_upstream.closed_early))
    assert fake_upstream.requests[0]["stream"] is True
    assert fake_upstream.closed_early[0] - left < 0.5
