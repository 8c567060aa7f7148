"""Requests are prepared, and answers parsed, for the deployment that takes them: tool handling, default max_tokens.

A model whose tools go to the upstream as a listing (`tool_parser: json`) may fail over to an upstream that calls
tools natively; that one must get the client's `tools` untouched, and its native `tool_calls` come back as they
are. The reverse: the json deployment's bare-JSON answer is still turned into a tool call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from codelab_common.testing import FakeOpenAI, serve_app
from codelab_llm_proxy.core.config import Settings
from codelab_llm_proxy.core.model_registry import DEFAULT_MAX_OUTPUT_TOKENS, default_models
from codelab_llm_proxy.main import create_app
from tests.fixtures.llm_proxy import LLM_PROXY_TEST_KEY, RunningLLMProxy, write_models_file

ONCE = {"max_attempts": 1}
READ_FILE = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file.",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}
MESSAGES = [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": "Explain main.py"}]
REQUEST: dict[str, Any] = {"model": "local", "messages": MESSAGES, "tools": [READ_FILE], "tool_choice": "auto"}
UPSTREAM_CALL_ID = "call_1"
"""FakeOpenAI numbers the ids of its scripted calls; calls the proxy extracts are `call_<24 hex digits>`."""
BARE_CALL = '{"name": "read_file", "arguments": {"path": "main.py"}}'


@asynccontextmanager
async def two_upstreams() -> AsyncIterator[tuple[FakeOpenAI, FakeOpenAI]]:
    """A llama.cpp-like upstream for the json-parser deployment and one with native tool calling."""
    local, cloud = FakeOpenAI(model="qwen"), FakeOpenAI(model="gpt")
    async with serve_app(local.app) as local_url, serve_app(cloud.app) as cloud_url:
        local.base_url, cloud.base_url = f"{local_url}/v1", f"{cloud_url}/v1"
        yield local, cloud


@asynccontextmanager
async def proxy(tmp_path: Path, upstream: FakeOpenAI, models: list[dict[str, Any]]) -> AsyncIterator[RunningLLMProxy]:
    models_file = write_models_file(tmp_path / "models.yaml", models)
    app = create_app(Settings(internal_api_key=LLM_PROXY_TEST_KEY, models_file=models_file))  # type: ignore[arg-type]
    async with serve_app(app) as url:
        yield RunningLLMProxy(url=url, api_key=LLM_PROXY_TEST_KEY, upstream=upstream, app=app)


def fallback_model(local: FakeOpenAI, cloud: FakeOpenAI) -> list[dict[str, Any]]:
    """`local` (json parser, grammar) falls back to the public model `cloud` (native tools)."""
    return [
        {
            "name": "local",
            "upstream_model": "qwen",
            "base_url": local.base_url,
            "context_window": 8192,
            "tool_parser": "json",
            "constrain_tool_calls": True,
            "max_output_tokens": 1024,
            "retry": ONCE,
            "fallbacks": ["cloud"],
        },
        {"name": "cloud", "upstream_model": "gpt", "base_url": cloud.base_url, "context_window": 128000, "retry": ONCE},
    ]


def two_deployments(local: FakeOpenAI, cloud: FakeOpenAI) -> list[dict[str, Any]]:
    """One public model: a json-parser deployment, then one that calls tools natively (`tool_parser: null`)."""
    return [
        {
            "name": "local",
            "base_url": local.base_url,
            "upstream_model": "qwen",
            "context_window": 8192,
            "tool_parser": "json",
            "constrain_tool_calls": True,
            "max_output_tokens": 1024,
            "retry": ONCE,
            "deployments": [
                {"id": "llama"},
                {
                    "id": "cloud",
                    "base_url": cloud.base_url,
                    "upstream_model": "gpt",
                    "tool_parser": None,
                    "constrain_tool_calls": False,
                    "max_output_tokens": 4000,
                },
            ],
        }
    ]


CONFIGS = {"fallback-model": fallback_model, "deployment-override": two_deployments}


async def ask(p: RunningLLMProxy, stream: bool) -> dict[str, Any]:
    """The answer's message (for a stream: the deltas joined) and its finish reason."""
    if not stream:
        status, answer = await p.chat(REQUEST)
        assert status == 200, answer
        choice = answer["choices"][0]
        return {**choice["message"], "finish_reason": choice["finish_reason"], "model": answer["model"]}
    status, events = await p.stream(REQUEST)
    assert status == 200 and events[-1] == "[DONE]", events
    text, calls, finish = "", [], None
    for event in events[:-1]:
        assert event["model"] == "local"
        for choice in event["choices"]:
            text += choice["delta"].get("content") or ""
            for delta in choice["delta"].get("tool_calls") or ():
                if "id" in delta:
                    calls.append({"id": delta["id"], "function": {"name": delta["function"]["name"], "arguments": ""}})
                calls[delta["index"]]["function"]["arguments"] += delta["function"].get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    return {"content": text or None, "tool_calls": calls or None, "finish_reason": finish, "model": "local"}


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_native_fallback_gets_the_clients_tools_and_its_tool_calls_come_back(
    tmp_path: Path, config: str, stream: bool
) -> None:
    async with two_upstreams() as (local, cloud), proxy(tmp_path, local, CONFIGS[config](local, cloud)) as p:
        local.reply_error(503, "llama.cpp is loading")
        cloud.reply_tool_calls(("read_file", {"path": "main.py"}))
        message = await ask(p, stream)

    (prepared,) = local.requests
    assert "tools" not in prepared and "tool_choice" not in prepared and "grammar" in prepared
    assert "read_file(path)" in prepared["messages"][0]["content"], "the json deployment lists the tools"
    assert prepared["max_tokens"] == 1024

    (native,) = cloud.requests
    assert native["tools"] == [READ_FILE] and native["tool_choice"] == "auto", "the client's tools, untouched"
    assert native["messages"] == MESSAGES, "no tool listing in the system message"
    assert "grammar" not in native and "stop" not in native
    assert native["model"] == "gpt"
    assert native["max_tokens"] == (DEFAULT_MAX_OUTPUT_TOKENS if config == "fallback-model" else 4000)

    assert message["finish_reason"] == "tool_calls" and message["model"] == "local"
    (call,) = message["tool_calls"]
    assert call["id"] == UPSTREAM_CALL_ID, "the upstream's own call, not one the proxy extracted"
    assert call["function"]["name"] == "read_file"
    assert orjson.loads(call["function"]["arguments"]) == {"path": "main.py"}


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_the_json_deployments_bare_json_answer_becomes_a_tool_call(
    tmp_path: Path, config: str, stream: bool
) -> None:
    async with two_upstreams() as (local, cloud), proxy(tmp_path, local, CONFIGS[config](local, cloud)) as p:
        local.reply_text(BARE_CALL, chunk_size=7)
        message = await ask(p, stream)
    assert not cloud.requests
    assert message["finish_reason"] == "tool_calls" and not message["content"]
    (call,) = message["tool_calls"]
    assert call["function"]["name"] == "read_file" and call["id"] != UPSTREAM_CALL_ID
    assert orjson.loads(call["function"]["arguments"]) == {"path": "main.py"}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_a_native_deployments_text_is_never_parsed_for_calls(tmp_path: Path, stream: bool) -> None:
    """The json parser belongs to the other deployment: JSON the native one writes as text stays text."""
    async with two_upstreams() as (local, cloud), proxy(tmp_path, local, two_deployments(local, cloud)) as p:
        local.reply_error(503, "down")
        cloud.reply_text(BARE_CALL)
        message = await ask(p, stream)
    assert message["content"] == BARE_CALL and not message.get("tool_calls") and message["finish_reason"] == "stop"


async def test_default_max_tokens_per_model_unless_the_client_sets_one(tmp_path: Path) -> None:
    async with two_upstreams() as (local, cloud), proxy(tmp_path, local, fallback_model(local, cloud)) as p:
        plain = {"model": "local", "messages": MESSAGES}
        for body in (
            plain,
            {**plain, "max_tokens": 77},
            {**plain, "max_completion_tokens": 66},
            {**plain, "max_tokens": None},
            {**plain, "model": "cloud"},
        ):
            local.reply_text("ok")
            cloud.reply_text("ok")
            assert (await p.chat(body))[0] == 200
        # A prompt that fills most of the context leaves room for less (bytes / 4 as the token estimate).
        long = {"model": "local", "messages": [{"role": "user", "content": "x" * 4 * 7500}]}
        local.reply_text("ok")
        assert (await p.chat(long))[0] == 200
        huge = {"model": "local", "messages": [{"role": "user", "content": "x" * 4 * 9000}]}
        local.reply_text("ok")
        assert (await p.chat(huge))[0] == 200
    sent: list[tuple[Any, Any]] = [(r.get("max_tokens"), r.get("max_completion_tokens")) for r in local.requests]
    assert sent[:4] == [(1024, None), (77, None), (None, 66), (1024, None)]
    assert 600 < sent[4][0] < 8192 - 7500, "lowered to what the context window leaves"
    assert sent[5] == (256, None), "never below the floor"
    assert cloud.requests[0]["max_tokens"] == DEFAULT_MAX_OUTPUT_TOKENS


def test_the_embedded_model_caps_a_step_at_512_tokens_without_a_grammar() -> None:
    (model,) = default_models(Settings(internal_api_key="k"))  # type: ignore[arg-type]
    assert model.max_output_tokens == 512 and model.tool_parser == "json" and not model.constrain_tool_calls


def test_an_unknown_tool_parser_on_a_deployment_fails_at_startup(tmp_path: Path) -> None:
    entry = {"name": "m", "base_url": "http://x/v1", "context_window": 10, "deployments": [{"tool_parser": "nope"}]}
    models_file = write_models_file(tmp_path / "models.yaml", [entry])
    with pytest.raises(ValueError, match="unknown tool parser 'nope'"):
        create_app(Settings(internal_api_key=LLM_PROXY_TEST_KEY, models_file=models_file))  # type: ignore[arg-type]


def streamed_model(upstream: FakeOpenAI) -> dict[str, Any]:
    return {
        "name": "local",
        "upstream_model": "qwen",
        "base_url": upstream.base_url,
        "context_window": 8192,
        "tool_parser": "json",
        "stream_upstream": True,
        "retry": ONCE,
    }


async def test_a_stream_upstream_deployment_answers_a_whole_request_from_a_stream(tmp_path: Path) -> None:
    async with two_upstreams() as (local, _), proxy(tmp_path, local, [streamed_model(local)]) as p:
        local.reply_text("Hello there.", chunk_size=3)
        local.reply_tool_calls(("read_file", {"path": "main.py"}), text="Reading.")
        local.reply_text(BARE_CALL, chunk_size=7)
        text = (await p.chat({"model": "local", "messages": MESSAGES}))[1]
        native = (await p.chat(REQUEST))[1]
        bare = (await p.chat(REQUEST))[1]
    assert all(r["stream"] is True and r["stream_options"] == {"include_usage": True} for r in local.requests)
    assert text["object"] == "chat.completion" and text["model"] == "local"
    assert text["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "Hello there."}, "finish_reason": "stop"}
    ]
    assert text["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    message = native["choices"][0]["message"]
    assert native["choices"][0]["finish_reason"] == "tool_calls" and message["content"] == "Reading."
    function = {"name": "read_file", "arguments": '{"path":"main.py"}'}
    assert message["tool_calls"] == [{"id": UPSTREAM_CALL_ID, "type": "function", "function": function}]
    (call,) = bare["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "read_file" and bare["choices"][0]["finish_reason"] == "tool_calls"


def test_the_embedded_model_is_read_as_a_stream() -> None:
    (model,) = default_models(Settings(internal_api_key="k"))  # type: ignore[arg-type]
    assert model.stream_upstream, "llama.cpp stops a streamed answer when its client leaves, not a whole one"
