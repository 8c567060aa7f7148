"""The official SDKs parse the proxy's translated output: `anthropic` on `/v1/messages` (to an OpenAI-compatible
and to an Anthropic upstream), `openai` on `/v1/chat/completions` to an Anthropic upstream; text, tool calls,
streams, usage and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from codelab_common.testing import FakeAnthropic, FakeOpenAI
from tests.fixtures.llm_proxy import RunningLLMProxy

CLAUDE = "claude-test"
GOLDEN = Path(__file__).parent / "golden" / "upstream" / "anthropic"
READ_FILE: dict[str, Any] = {
    "name": "read_file",
    "description": "Read a file.",
    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
}
OPENAI_READ_FILE: Any = {
    "type": "function",
    "function": {"name": "read_file", "description": "Read a file.", "parameters": READ_FILE["input_schema"]},
}


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
            "retry": single_try,
        },
    ]


@pytest.fixture
async def claude_sdk(llm_proxy: RunningLLMProxy) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The `anthropic` SDK as a user configures it: the proxy's key as its API key (sent as `x-api-key`)."""
    async with anthropic.AsyncAnthropic(base_url=llm_proxy.url, api_key=llm_proxy.api_key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
async def openai_sdk(llm_proxy: RunningLLMProxy) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=f"{llm_proxy.url}/v1", api_key=llm_proxy.api_key, max_retries=0) as sdk:
        yield sdk


@pytest.mark.parametrize("model", ["fake-model", CLAUDE])
async def test_anthropic_sdk_non_stream_tool_call(
    model: str, claude_sdk: anthropic.AsyncAnthropic, fake_upstream: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_upstream.reply_tool_calls(("read_file", {"path": "main.py"}), text="Reading.")
    fake_anthropic.reply_tool_use(("read_file", {"path": "main.py"}), text="Reading.")
    message = await claude_sdk.messages.create(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": "Read main.py"}],
        tools=[READ_FILE],  # type: ignore[list-item]
    )
    assert message.model == model and message.stop_reason == "tool_use"
    text, call = message.content
    assert text.type == "text" and text.text == "Reading."
    assert call.type == "tool_use" and call.name == "read_file" and call.input == {"path": "main.py"}
    assert message.usage.input_tokens == 10 and message.usage.output_tokens == 5


@pytest.mark.parametrize("model", ["fake-model", CLAUDE])
async def test_anthropic_sdk_stream_text_then_tool_call(
    model: str, claude_sdk: anthropic.AsyncAnthropic, fake_upstream: FakeOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_upstream.reply_tool_calls(("read_file", {"path": "src/app.py"}), text="Let me look at it.")
    fake_anthropic.reply_tool_use(("read_file", {"path": "src/app.py"}), text="Let me look at it.")
    async with claude_sdk.messages.stream(
        model=model,
        max_tokens=256,
        messages=[{"role": "user", "content": "Open the app"}],
        tools=[READ_FILE],  # type: ignore[list-item]
    ) as stream:
        pieces = [piece async for piece in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(pieces) == "Let me look at it." and len(pieces) > 1
    assert final.stop_reason == "tool_use"
    assert [block.type for block in final.content] == ["text", "tool_use"]
    call = final.content[1]
    assert call.type == "tool_use" and call.input == {"path": "src/app.py"} and call.id
    assert final.usage.input_tokens == 10 and final.usage.output_tokens == 5


async def test_anthropic_sdk_multi_turn_reaches_anthropic_unchanged(
    claude_sdk: anthropic.AsyncAnthropic, fake_anthropic: FakeAnthropic
) -> None:
    """A tool_use / tool_result conversation survives Anthropic → OpenAI → Anthropic block for block."""
    fake_anthropic.reply_text("main.py prints hello.")
    messages: Any = [
        {"role": "user", "content": "What does main.py do?"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "toolu_1", "name": "read_file", "input": {"path": "main.py"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "print('hello')"},
                {"type": "text", "text": "Summarise it."},
            ],
        },
    ]
    answer = await claude_sdk.messages.create(  # type: ignore[call-overload]
        model=CLAUDE,
        max_tokens=300,
        system="Be brief.",
        messages=messages,
        tools=[READ_FILE],  # type: ignore[list-item]
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
    )
    assert answer.content[0].type == "text" and answer.content[0].text == "main.py prints hello."
    sent = fake_anthropic.requests[-1]
    assert sent["model"] == "claude-upstream" and sent["system"] == "Be brief." and sent["max_tokens"] == 300
    assert sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "What does main.py do?"}]},
        messages[1],
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "print('hello')"},
                {"type": "text", "text": "Summarise it."},
            ],
        },
    ]
    assert sent["tools"] == [READ_FILE]
    assert sent["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert sent["stop_sequences"] == ["END"]


async def test_anthropic_sdk_errors_are_typed(
    claude_sdk: anthropic.AsyncAnthropic, llm_proxy: RunningLLMProxy, fake_anthropic: FakeAnthropic
) -> None:
    user: Any = [{"role": "user", "content": "hi"}]
    with pytest.raises(anthropic.NotFoundError) as missing:
        await claude_sdk.messages.create(model="no-such-model", max_tokens=10, messages=user)
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    fake_anthropic.reply_error(400, "prompt is too long")
    with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
        await claude_sdk.messages.create(model=CLAUDE, max_tokens=10, messages=user)
    fake_anthropic.reply_error(529, "Overloaded")
    with pytest.raises(anthropic.APIStatusError) as failed:
        await claude_sdk.messages.create(model=CLAUDE, max_tokens=10, messages=user)
    assert failed.value.status_code == 502 and failed.value.body["error"]["type"] == "api_error"  # type: ignore[index]
    async with anthropic.AsyncAnthropic(base_url=llm_proxy.url, api_key="wrong-key", max_retries=0) as stranger:
        with pytest.raises(anthropic.AuthenticationError):
            await stranger.messages.create(model=CLAUDE, max_tokens=10, messages=user)


async def test_openai_sdk_against_anthropic_upstream(
    openai_sdk: openai.AsyncOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.reply_tool_use(("read_file", {"path": "a.py"}), ("read_file", {"path": "b.py"}))
    answer = await openai_sdk.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": "Read a.py and b.py"}], tools=[OPENAI_READ_FILE]
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and answer.model == CLAUDE
    calls = choice.message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("read_file", '{"path":"a.py"}'),
        ("read_file", '{"path":"b.py"}'),
    ]
    assert answer.usage is not None and answer.usage.prompt_tokens == 10 and answer.usage.total_tokens == 15
    sent = fake_anthropic.requests[-1]
    assert sent["max_tokens"] == 4096 and sent["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Read a.py and b.py"}]}
    ]


async def test_openai_sdk_streams_anthropic_tool_calls_and_usage(
    openai_sdk: openai.AsyncOpenAI, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.reply_tool_use(("read_file", {"path": "a.py"}), ("read_file", {"path": "b.py"}), text="Both.")
    stream = await openai_sdk.chat.completions.create(
        model=CLAUDE,
        messages=[{"role": "user", "content": "Read a.py and b.py"}],
        tools=[OPENAI_READ_FILE],
        stream=True,
        stream_options={"include_usage": True},
    )
    calls: dict[int, dict[str, Any]] = {}
    text, finish, usage, roles = "", None, None, []
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            roles.append(choice.delta.role)
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                if call.id:
                    entry["id"], entry["name"] = call.id, call.function.name  # type: ignore[union-attr]
                entry["arguments"] += call.function.arguments or ""  # type: ignore[union-attr]
    assert roles[0] == "assistant" and text == "Both." and finish == "tool_calls"
    assert sorted(calls) == [0, 1]
    assert [(c["name"], c["arguments"]) for c in calls.values()] == [
        ("read_file", '{"path":"a.py"}'),
        ("read_file", '{"path":"b.py"}'),
    ]
    assert all(c["id"] for c in calls.values())
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (10, 5)


async def test_anthropic_sdk_keeps_thinking_and_its_signature(
    claude_sdk: anthropic.AsyncAnthropic, fake_anthropic: FakeAnthropic
) -> None:
    """Anthropic → OpenAI shape → Anthropic: the thinking block and its signature come back as they were sent."""
    fake_anthropic.replay((GOLDEN / "thinking.sse").read_bytes())
    async with claude_sdk.messages.stream(
        model=CLAUDE,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "Say hello."}],
    ) as stream:
        final = await stream.get_final_message()
    thinking, text = final.content
    assert thinking.type == "thinking" and thinking.thinking == "The user wants a greeting."
    assert thinking.signature == "EqQBCgIYAhIM1gbcDa9GJwZA2b3h"
    assert text.type == "text" and text.text == "Hello!"
    assert fake_anthropic.requests[-1]["thinking"] == {"type": "enabled", "budget_tokens": 1024}


async def test_anthropic_sdk_raises_on_an_in_band_error(
    claude_sdk: anthropic.AsyncAnthropic, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.replay((GOLDEN / "error.sse").read_bytes())
    text = ""
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        async with claude_sdk.messages.stream(
            model=CLAUDE, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            async for piece in stream.text_stream:
                text += piece
    assert text == "Partial", "what arrived before the error is delivered, and the error is not swallowed"
