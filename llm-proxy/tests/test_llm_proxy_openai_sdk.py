"""The official `openai` SDK, pointed at the proxy, works unchanged: text, streams, tool calls, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.fixtures.llm_proxy import RunningLLMProxy

USER: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What does main.py do?"}]
TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": "read_file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        },
    }
]


@pytest.fixture
async def client(llm_proxy: RunningLLMProxy) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk = openai.AsyncOpenAI(
        base_url=f"{llm_proxy.url}/v1",
        api_key="unused-by-the-proxy",
        default_headers={"X-Internal-Auth": llm_proxy.api_key},
        max_retries=0,
    )
    async with sdk:
        yield sdk


async def test_sdk_non_stream_and_models(llm_proxy: RunningLLMProxy, client: openai.AsyncOpenAI) -> None:
    llm_proxy.upstream.reply_text("It prints hello.")
    answer = await client.chat.completions.create(model="fake-model", messages=USER, max_tokens=16)
    assert answer.choices[0].message.content == "It prints hello."
    assert answer.model == "fake-model" and answer.usage is not None
    models = await client.models.list()
    assert [m.id for m in models.data] == ["fake-model", "fake-json-model"]


async def test_sdk_stream(llm_proxy: RunningLLMProxy, client: openai.AsyncOpenAI) -> None:
    llm_proxy.upstream.reply_text("Streaming through the proxy.")
    stream = await client.chat.completions.create(
        model="fake-model",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        usage = chunk.usage or usage
    assert "".join(pieces) == "Streaming through the proxy."
    assert usage is not None and usage.total_tokens == 15


@pytest.mark.parametrize("native", [True, False], ids=["native", "bare-json"])
async def test_sdk_tool_calls(llm_proxy: RunningLLMProxy, client: openai.AsyncOpenAI, native: bool) -> None:
    for _ in range(2):
        if native:
            llm_proxy.upstream.reply_tool_calls(("read_file", {"path": "main.py"}))
        else:
            llm_proxy.upstream.reply_text('{"name": "read_file", "arguments": {"path": "main.py"}}')
    model = "fake-model" if native else "fake-json-model"
    answer = await client.chat.completions.create(model=model, messages=USER, tools=TOOLS)
    (call,) = answer.choices[0].message.tool_calls or []
    assert answer.choices[0].finish_reason == "tool_calls"
    assert call.type == "function"
    assert call.function.name == "read_file" and orjson.loads(call.function.arguments) == {"path": "main.py"}

    stream = await client.chat.completions.create(model=model, messages=USER, tools=TOOLS, stream=True)
    names, arguments, ids, finish = "", "", set(), None
    async for chunk in stream:
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for delta in choice.delta.tool_calls or ():
            if delta.id:
                ids.add(delta.id)
            if delta.function:
                names += delta.function.name or ""
                arguments += delta.function.arguments or ""
    assert names == "read_file" and orjson.loads(arguments) == {"path": "main.py"}
    assert len(ids) == 1 and finish == "tool_calls"


async def test_sdk_sees_typed_errors(llm_proxy: RunningLLMProxy, client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        await client.chat.completions.create(model="no-such-model", messages=USER)
    assert "no-such-model" in str(not_found.value)
    llm_proxy.upstream.reply_error(400, "maximum context length exceeded")
    with pytest.raises(openai.BadRequestError, match="maximum context length"):
        await client.chat.completions.create(model="fake-model", messages=USER)
    llm_proxy.upstream.reply_error(503, "overloaded")
    with pytest.raises(openai.APIStatusError) as failed:
        await client.chat.completions.create(model="fake-model", messages=USER)
    assert failed.value.status_code == 502
