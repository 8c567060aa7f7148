"""Request translation both ways (seen by the fake upstreams), error mapping, auth on `/v1/messages`, and the
stream translators driven directly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from codelab_common.testing import FakeAnthropic, FakeOpenAI
from codelab_llm_proxy.services.translation.anthropic_request import anthropic_to_openai_request
from codelab_llm_proxy.services.translation.anthropic_stream import AnthropicToOpenAIStream, OpenAIToAnthropicStream
from tests.fixtures.llm_proxy import RunningLLMProxy

CLAUDE = "claude-test"
GOLDEN = Path(__file__).parent / "golden"
PNG = "iVBORw0KGgo="
SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}}


@pytest.fixture
def llm_proxy_models(fake_upstream: FakeOpenAI, fake_anthropic: FakeAnthropic) -> list[dict[str, object]]:
    single_try = {"max_attempts": 1}
    return [
        {"name": "fake-model", "base_url": fake_upstream.base_url, "context_window": 8192, "retry": single_try},
        {
            "name": CLAUDE,
            "provider": "anthropic",
            "upstream_model": "claude-upstream",
            "base_url": fake_anthropic.base_url,
            "context_window": 200000,
            "max_output_tokens": 333,
            "retry": single_try,
        },
    ]


async def post(proxy: RunningLLMProxy, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{proxy.url}{path}", data=data, headers=headers or proxy.headers) as response,
    ):
        return response.status, response.headers, await response.read()


async def test_openai_request_becomes_the_exact_anthropic_request(
    llm_proxy: RunningLLMProxy, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.reply_text("ok")
    body = {
        "model": CLAUDE,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Looking.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"path":"a"}'},
                    },
                    {"id": "call_2", "type": "function", "function": {"name": "list_dir", "arguments": ""}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "A"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "a b"}]},
            {"role": "user", "content": "Go on."},
        ],
        "tools": [
            {"type": "function", "function": {"name": "read_file", "description": "Read.", "parameters": SCHEMA}},
            {"type": "function", "function": {"name": "list_dir"}},
        ],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "stop": "END",
        "temperature": 0.2,
        "user": "user-7",
    }
    status, _, answer = await post(llm_proxy, "/v1/chat/completions", body)
    assert status == 200, answer
    assert fake_anthropic.requests[-1] == {
        "model": "claude-upstream",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Looking."},
                    {"type": "tool_use", "id": "call_1", "name": "read_file", "input": {"path": "a"}},
                    {"type": "tool_use", "id": "call_2", "name": "list_dir", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "A"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "a b"}]},
                    {"type": "text", "text": "Go on."},
                ],
            },
        ],
        "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
        "max_tokens": 333,
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "tools": [
            {"name": "read_file", "description": "Read.", "input_schema": SCHEMA},
            {"name": "list_dir", "input_schema": {"type": "object", "properties": {}}},
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "user-7"},
    }
    assert fake_anthropic.headers[-1]["anthropic-version"] == "2023-06-01"


async def test_anthropic_request_becomes_the_exact_openai_request(
    llm_proxy: RunningLLMProxy, fake_upstream: FakeOpenAI
) -> None:
    fake_upstream.reply_text("ok")
    body = {
        "model": "fake-model",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "a"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "A"}]}
                ],
            },
        ],
        "tools": [{"name": "read_file", "input_schema": SCHEMA}],
        "tool_choice": {"type": "tool", "name": "read_file"},
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-7"},
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "stream": True,
    }
    status, headers, raw = await post(llm_proxy, "/v1/messages", body, {"x-api-key": llm_proxy.api_key})
    assert status == 200 and headers["content-type"].startswith("text/event-stream"), raw
    assert fake_upstream.requests[-1] == {
        "model": "fake-model",
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"path":"a"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "A"},
        ],
        "max_tokens": 50,
        "stop": ["END"],
        "tools": [{"type": "function", "function": {"name": "read_file", "parameters": SCHEMA}}],
        "tool_choice": {"type": "function", "function": {"name": "read_file"}},
        "user": "user-7",
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_thinking_is_sent_only_to_a_request_that_opted_in(
    llm_proxy: RunningLLMProxy, fake_anthropic: FakeAnthropic
) -> None:
    recording = (GOLDEN / "upstream" / "anthropic" / "thinking.sse").read_bytes()
    fake_anthropic.replay(recording, repeat=True)
    base = {"model": CLAUDE, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    _, _, plain = await post(llm_proxy, "/v1/chat/completions", base)
    assert b"reasoning_content" not in plain and b'"content":"Hello!"' in plain
    opted = {**base, "thinking": {"type": "enabled", "budget_tokens": 1024}}
    _, _, thinking = await post(llm_proxy, "/v1/chat/completions", opted)
    assert b'"reasoning_content":"The user wants"' in thinking
    assert fake_anthropic.requests[-1]["thinking"] == {"type": "enabled", "budget_tokens": 1024}


async def test_anthropic_stream_cut_before_message_stop_is_an_in_band_error(
    llm_proxy: RunningLLMProxy, fake_anthropic: FakeAnthropic
) -> None:
    recording = (GOLDEN / "upstream" / "anthropic" / "text.sse").read_text()
    fake_anthropic.replay(recording[: recording.index("event: message_delta")].encode())
    status, chunks = await llm_proxy.stream({"model": CLAUDE, "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200
    assert chunks[-1]["error"]["code"] == "upstream_error" and "message_stop" in chunks[-1]["error"]["message"]
    assert "[DONE]" not in chunks


async def test_upstream_http_errors_map_to_the_proxy_errors(
    llm_proxy: RunningLLMProxy, fake_anthropic: FakeAnthropic
) -> None:
    body = {"model": CLAUDE, "messages": [{"role": "user", "content": "hi"}]}
    fake_anthropic.reply_error(400, "prompt is too long: 210000 tokens > 200000 maximum")
    status, _, raw = await post(llm_proxy, "/v1/chat/completions", body)
    message = orjson.loads(raw)["error"]["message"]
    assert status == 400 and "HTTP 400 (invalid_request_error): prompt is too long: 210000 tokens" in message
    fake_anthropic.reply_error(401, "invalid x-api-key")
    status, _, raw = await post(llm_proxy, "/v1/chat/completions", body)
    assert status == 502 and "credentials" in orjson.loads(raw)["error"]["message"]
    status, _, raw = await post(llm_proxy, "/v1/chat/completions", {**body, "n": 2})
    assert status == 400 and "n > 1" in orjson.loads(raw)["error"]["message"]
    bad_call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
    messages = [*body["messages"], {"role": "assistant", "content": None, "tool_calls": [bad_call]}]
    status, _, raw = await post(llm_proxy, "/v1/chat/completions", {**body, "messages": messages})
    assert status == 400 and "not valid JSON" in orjson.loads(raw)["error"]["message"]


async def test_messages_endpoint_validates_and_authenticates(llm_proxy: RunningLLMProxy) -> None:
    key = {"x-api-key": llm_proxy.api_key}
    status, _, raw = await post(llm_proxy, "/v1/messages", {"model": CLAUDE, "messages": []}, key)
    error = orjson.loads(raw)
    assert status == 400 and error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in error["error"]["message"]
    status, _, raw = await post(llm_proxy, "/v1/messages", b"{not json", key)
    assert status == 400 and orjson.loads(raw)["error"]["type"] == "invalid_request_error"
    ok = {"model": "fake-model", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    status, _, _ = await post(llm_proxy, "/v1/messages", ok, {"x-api-key": "wrong"})
    assert status == 401
    chat = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]}
    status, _, _ = await post(llm_proxy, "/v1/chat/completions", chat, key)
    assert status == 401, "x-api-key is accepted on /v1/messages only"


@pytest.mark.parametrize(
    ("path", "model"), [("/v1/messages", "fake-model"), ("/v1/chat/completions", CLAUDE)], ids=["ingress", "provider"]
)
async def test_client_disconnect_mid_stream_cancels_the_upstream_request(
    llm_proxy: RunningLLMProxy, fake_upstream: FakeOpenAI, fake_anthropic: FakeAnthropic, path: str, model: str
) -> None:
    fake_upstream.reply_text("word " * 200, chunk_delay=0.05, chunk_size=5)
    fake_anthropic.reply_text("word " * 200, chunk_delay=0.05, chunk_size=5)
    service = llm_proxy.app.state.chat_completions  # type: ignore[attr-defined]
    body = {"model": model, "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    headers = {**llm_proxy.headers, "x-api-key": llm_proxy.api_key}
    async with aiohttp.ClientSession() as session:
        response = await session.post(f"{llm_proxy.url}{path}", data=orjson.dumps(body), headers=headers)
        assert response.status == 200
        await response.content.readline()
        assert service.in_flight == 1
        response.close()
    for _ in range(100):
        if not service.in_flight:
            break
        await asyncio.sleep(0.02)
    assert service.in_flight == 0, "the relay (and with it the upstream request) stops within moments"


def test_anthropic_events_translate_with_tool_indexes_over_tool_blocks_only() -> None:
    stream = AnthropicToOpenAIStream(model="m", created=1, include_usage=False, include_reasoning=False)
    start = {"type": "message_start", "message": {"id": "msg_1", "usage": {"input_tokens": 3}}}
    assert stream.feed(start)[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert stream.feed({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}}) == []
    assert stream.feed({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta"}}) == []
    assert stream.dropped_thinking == 1
    assert stream.feed({"type": "brand_new_event"}) == [] and stream.feed({"type": "ping"}) == []
    tool = {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {}}
    (head,) = stream.feed({"type": "content_block_start", "index": 1, "content_block": tool})
    assert head["choices"][0]["delta"]["tool_calls"][0] == {
        "index": 0,
        "id": "toolu_9",
        "type": "function",
        "function": {"name": "f", "arguments": ""},
    }
    (empty,) = stream.feed({"type": "content_block_stop", "index": 1})
    assert empty["choices"][0]["delta"]["tool_calls"] == [{"index": 0, "function": {"arguments": "{}"}}]
    (finish,) = stream.feed({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {}})
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    assert stream.feed({"type": "message_stop"}) == [] and stream.done


def test_openai_chunks_without_any_content_still_make_a_whole_anthropic_stream() -> None:
    stream = OpenAIToAnthropicStream(model="m")
    names = [name for name, _ in stream.finish()]
    assert names == ["message_start", "message_delta", "message_stop"]


def test_a_tool_result_marked_as_an_error_tells_an_openai_model_so() -> None:
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {"role": "user", "content": "read a.py"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "read_file", "input": {}}]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "no such file", "is_error": True},
                    {"type": "tool_result", "tool_use_id": "t2", "content": [{"type": "text", "text": "ok"}]},
                ],
            },
        ],
    }
    messages = anthropic_to_openai_request(body, keep_thinking=False)["messages"]
    assert messages[-2:] == [
        {"role": "tool", "tool_call_id": "t1", "content": "Error: no such file"},
        {"role": "tool", "tool_call_id": "t2", "content": "ok"},
    ]
