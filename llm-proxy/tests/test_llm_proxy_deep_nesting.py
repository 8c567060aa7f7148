"""Deeply nested JSON anywhere in a request is a 400 in the project's envelope, never a 500, and the proxy stays up.

Bodies nested 300 levels (orjson parses them but cannot serialise them again: the old plain-text 500) and 100,000
levels (past every parser's limit) go to every POST endpoint, nested in message content, tool parameters, metadata
and tool-call arguments. The limit (`MAX_JSON_DEPTH`) is checked where the proxy parses a body, for all endpoints.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from codelab_common.testing import FakeAnthropic, FakeOpenAI
from codelab_llm_proxy.core.errors import InvalidRequest
from codelab_llm_proxy.core.json_body import MAX_JSON_DEPTH, nested_within, parse_json_object
from codelab_llm_proxy.services.tool_parsers import get_tool_parser
from codelab_llm_proxy.services.translation.anthropic_response import parse_arguments
from tests.fixtures.llm_proxy import RunningLLMProxy

DEPTHS = [300, 100_000]


@pytest.fixture
def llm_proxy_models(fake_upstream: FakeOpenAI, fake_anthropic: FakeAnthropic) -> list[dict[str, object]]:
    once = {"context_window": 8192, "retry": {"max_attempts": 1}}
    local = {"tool_parser": "json", "constrain_tool_calls": True, "tokenizer": "llama.cpp"}
    return [
        {"name": "fake-model", "base_url": fake_upstream.base_url, **once},
        {"name": "local", "base_url": fake_upstream.base_url, **local, **once},
        {"name": "claude", "provider": "anthropic", "base_url": fake_anthropic.base_url, **once},
    ]


def deep(depth: int) -> str:
    """JSON nested `depth` levels, objects and arrays in turn."""
    opening = "".join('{"a":' if level % 2 == 0 else "[" for level in range(depth))
    return opening + "1" + "".join("}" if level % 2 == 0 else "]" for level in reversed(range(depth)))


DEEP = "<deep JSON>"
DEEP_TEXT = "<deep JSON as a string>"
HI: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
FUNCTION = {"type": "function", "function": {"name": "f", "parameters": DEEP}}
CHAT = {
    "content": {"model": "fake-model", "messages": [{"role": "user", "content": [DEEP]}]},
    "tool parameters": {"model": "fake-model", "messages": HI, "tools": [FUNCTION]},
    "parsed tool parameters": {"model": "local", "messages": HI, "tools": [FUNCTION]},
    "metadata": {"model": "fake-model", "messages": HI, "metadata": DEEP},
    "tool-call arguments": {
        "model": "claude",
        "messages": [
            *HI,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": DEEP_TEXT}}],
            },
        ],
    },
}
TOOL_USE = {"type": "tool_use", "id": "t", "name": "f", "input": DEEP}
MESSAGES = {
    "content": {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": [DEEP]}]},
    "tool input schema": {
        "model": "local",
        "max_tokens": 10,
        "messages": HI,
        "tools": [{"name": "f", "input_schema": DEEP}],
    },
    "tool_use input": {
        "model": "fake-model",
        "max_tokens": 10,
        "messages": [{"role": "assistant", "content": [TOOL_USE]}],
    },
    "metadata": {"model": "claude", "max_tokens": 10, "messages": HI, "metadata": DEEP},
}
TOKENIZE = {
    "content": {"model": "local", "messages": [{"role": "user", "content": DEEP}]},
    "tool parameters": {"model": "local", "messages": HI, "tools": [FUNCTION]},
}


def with_deep(body: dict[str, Any], depth: int) -> str:
    """`body` as JSON with `DEEP` replaced by JSON nested `depth` levels (`DEEP_TEXT` by the same as a string)."""
    value = deep(depth)
    text = orjson.dumps(body).decode().replace(f'"{DEEP}"', value)
    return text.replace(f'"{DEEP_TEXT}"', orjson.dumps(value).decode())


ENDPOINTS = {"/v1/chat/completions": CHAT, "/v1/messages": MESSAGES, "/v1/llm/tokenize": TOKENIZE}


async def post(proxy: RunningLLMProxy, path: str, body: str) -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{proxy.url}{path}", data=body.encode(), headers=proxy.headers) as response,
    ):
        raw = await response.read()
        return response.status, response.content_type, orjson.loads(raw)


def assert_nesting_refused(path: str, status: int, content_type: str, answer: Any) -> None:
    assert status == 400 and content_type == "application/json"
    if path == "/v1/messages":
        assert answer["type"] == "error"
    else:
        assert set(answer) == {"error"}
    error = answer["error"]
    assert {"message", "type", "code"} <= set(error) and error["code"] == "invalid_request"
    assert error["type"] == "invalid_request_error" and f"nested more than {MAX_JSON_DEPTH} levels" in error["message"]


async def assert_still_serving(proxy: RunningLLMProxy, upstream: FakeOpenAI) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{proxy.url}/health") as response:
        assert response.status == 200
    upstream.reply_text("still here")
    status, answer = await proxy.chat({"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]})
    assert status == 200 and answer["choices"][0]["message"]["content"] == "still here"


@pytest.mark.parametrize("depth", DEPTHS)
@pytest.mark.parametrize("path", list(ENDPOINTS))
async def test_deep_nesting_is_a_400_everywhere(
    llm_proxy: RunningLLMProxy, fake_upstream: FakeOpenAI, fake_anthropic: FakeAnthropic, path: str, depth: int
) -> None:
    for where, body in ENDPOINTS[path].items():
        for stream in (False, True) if path != "/v1/llm/tokenize" else (False,):
            status, content_type, answer = await post(llm_proxy, path, with_deep({**body, "stream": stream}, depth))
            assert (status, where) == (400, where), answer
            assert_nesting_refused(path, status, content_type, answer)
    assert fake_upstream.requests == [] and fake_anthropic.requests == [] and fake_upstream.tokenized == 0
    await assert_still_serving(llm_proxy, fake_upstream)


async def test_every_post_endpoint_is_covered(llm_proxy: RunningLLMProxy) -> None:
    """A new POST endpoint must parse its body with `parse_json_object` and be added to `ENDPOINTS`."""
    app: Any = llm_proxy.app
    posts = {path for path, operations in app.openapi()["paths"].items() if "post" in operations}
    assert posts == set(ENDPOINTS)
    for path in posts:
        assert_nesting_refused(path, *await post(llm_proxy, path, deep(1000)))


async def test_a_deep_but_reasonable_tool_schema_still_works(
    llm_proxy: RunningLLMProxy, fake_upstream: FakeOpenAI
) -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(20):
        schema = {"type": "object", "properties": {"inner": schema}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    fake_upstream.reply_text("fine")
    status, _ = await llm_proxy.chat({"model": "fake-model", "messages": HI, "tools": tools})
    assert status == 200 and fake_upstream.requests[-1]["tools"] == tools


def test_the_limit_counts_objects_and_arrays_including_the_outermost() -> None:
    at_limit = deep(MAX_JSON_DEPTH)
    assert nested_within(orjson.loads(at_limit), MAX_JSON_DEPTH)
    assert parse_json_object(at_limit) == orjson.loads(at_limit)
    with pytest.raises(InvalidRequest, match="nested more than"):
        parse_json_object(deep(MAX_JSON_DEPTH + 1))
    assert nested_within(1, 0) and nested_within([], 1) and not nested_within([[]], 1)
    assert nested_within({"a": [1, {"b": "[[[[not counted]]]]"}]}, 3)
    assert not nested_within({"a": [1, {"b": []}]}, 3)


@pytest.mark.parametrize(
    ("raw", "message"),
    [("{oops", "not valid JSON"), ("[1]", "must be a JSON object"), ("[" * 2000 + "]" * 2000, "nested more than")],
)
def test_bodies_that_are_not_objects_are_named(raw: str, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_json_object(raw, "tool call 'f': arguments")


def test_deeply_nested_model_output_is_text_not_a_crash() -> None:
    """The answer side: a model writing deeply nested JSON gets no tool call out of it, and no 500."""
    parser = get_tool_parser("json")
    offered = {"f": {"type": "object", "properties": {"a": {"type": "object"}}}}
    assert parser.extract("<tool_call>" + "[" * 100_000, offered) is None
    call = '{"name": "f", "arguments": ' + orjson.dumps('{"a": ' + deep(600) + "}").decode() + "}"
    assert parser.extract(call, offered) is None
    assert parse_arguments(deep(600)) == {}
