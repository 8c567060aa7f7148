"""Request bodies: over `max_body_bytes` a 413 before anything parses them (declared or chunked), a tool result as
large as the gateway forwards accepted, and JSON nested too deep a 400, never a 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest

from codelab_common.settings import DEFAULT_MAX_BODY_BYTES
from tests.fixtures.agent_runtime import RunningAgentRuntime

LIMIT = 20_000


def user_message(session_id: str, content: str) -> bytes:
    return orjson.dumps({"session_id": session_id, "message": {"type": "user_message", "content": content}})


async def chunks(data: bytes, size: int = 4096) -> AsyncIterator[bytes]:
    """A body sent with `Transfer-Encoding: chunked`, so no Content-Length tells its size."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def post(server: RunningAgentRuntime, path: str, data: Any, headers: dict[str, str] | None = None) -> Any:
    """Status and body: parsed when JSON, else its text (a stream's SSE)."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.url + path, data=data, headers=server.headers if headers is None else headers) as response,
    ):
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


@pytest.mark.parametrize("agent_runtime_overrides", [{"max_body_bytes": LIMIT}], indirect=True)
@pytest.mark.parametrize("path", ["/agent/message/stream", "/agent/sessions/big/input"])
async def test_a_body_over_the_limit_is_a_413_declared_or_chunked(
    agent_runtime: RunningAgentRuntime, path: str
) -> None:
    big = user_message("big", "x" * LIMIT)
    for data in (big, chunks(big)):
        status, body = await post(agent_runtime, path, data)
        assert status == 413
        assert body == {
            "error": {
                "message": f"request body is larger than the limit of {LIMIT} bytes",
                "type": "invalid_request_error",
                "code": "TOO_LARGE",
            }
        }
    assert agent_runtime.upstream.requests == []
    status, _ = await post(agent_runtime, path, chunks(user_message("big", "x" * (LIMIT - 200))))
    assert status == 200


@pytest.mark.parametrize("agent_runtime_overrides", [{"max_body_bytes": LIMIT}], indirect=True)
async def test_a_caller_without_the_key_is_refused_before_its_body_counts(agent_runtime: RunningAgentRuntime) -> None:
    status, body = await post(agent_runtime, "/agent/message/stream", user_message("s", "x" * LIMIT), headers={})
    assert status == 401 and body["error"]["code"] == "UNAUTHORIZED"


async def test_the_default_limit_takes_a_tool_result_as_large_as_the_gateway_forwards(
    agent_runtime: RunningAgentRuntime,
) -> None:
    """The gateway forwards a tool result from one WebSocket frame (1 MiB by default) in a small JSON envelope; every
    character escaped (a quote becomes `\\"`) still fits twice over."""
    assert agent_runtime.settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    agent_runtime.upstream.reply_tool_calls(("read_file", {"path": "big.txt"}))
    start = await agent_runtime.send("s-big", {"type": "user_message", "content": "read big.txt"})
    call_id = start.tool_calls[0]["call_id"]
    agent_runtime.upstream.reply_text("done")
    result = {"type": "tool_result", "call_id": call_id, "result": {"content": '"' * (1 << 20)}}
    data = orjson.dumps({"session_id": "s-big", "message": result})
    assert 2 << 20 < len(data) < DEFAULT_MAX_BODY_BYTES
    status, body = await post(agent_runtime, "/agent/sessions/s-big/input", chunks(data, 1 << 16))
    assert status == 200 and body["status"] == "accepted"


def nested(depth: int, leaf: str = "1") -> str:
    """`{"a": {"a": ... leaf ...}}`, `depth` objects deep."""
    return '{"a":' * depth + leaf + "}" * depth


def request(message: str, session_id: str = "deep", tools: str = "null") -> bytes:
    return f'{{"session_id":"{session_id}","message":{message},"tools":{tools}}}'.encode()


def deep_bodies(depth: int) -> list[bytes]:
    """Bodies nested `depth` deep where the schema allows any JSON (a tool result, an edit's arguments), where it
    allows none (the content, the tool names), and as the whole body."""
    deep = nested(depth)
    return [
        request(f'{{"type":"tool_result","call_id":"c1","result":{deep}}}'),
        request(f'{{"type":"approval","call_id":"c1","decision":"edit","arguments":{deep}}}'),
        request(f'{{"type":"user_message","content":{deep}}}'),
        request('{"type":"user_message","content":"hi"}', tools=nested(depth, "[]")),
        deep.encode(),
        ("[" * depth + "]" * depth).encode(),
    ]


@pytest.mark.parametrize("depth", [300, 100_000])
@pytest.mark.parametrize("path", ["/agent/message/stream", "/agent/sessions/deep/input"])
async def test_json_nested_too_deep_is_a_400(agent_runtime: RunningAgentRuntime, path: str, depth: int) -> None:
    for data in deep_bodies(depth):
        status, body = await post(agent_runtime, path, data)
        assert status == 400, (data[:120], body)
        assert body["error"]["code"] == "INVALID_FORMAT" and body["error"]["type"] == "invalid_request_error"
    assert agent_runtime.upstream.requests == []
    status, session = await agent_runtime.session("deep")
    assert status == 404, session


@pytest.mark.parametrize("path", ["/agent/message/stream", "/agent/sessions/s-deep/input"])
async def test_a_deep_tool_result_for_a_waiting_call_is_a_400_and_one_the_parser_takes_is_logged(
    agent_runtime: RunningAgentRuntime, path: str
) -> None:
    """Answering a call that waits: nested 300 deep was a 503 on `/input` (orjson took it in, then could not write
    it to the log); the deepest result the parser takes goes through the turn like any other."""
    agent_runtime.upstream.reply_tool_calls(("read_file", {"path": "a.txt"}))
    start = await agent_runtime.send("s-deep", {"type": "user_message", "content": "read a.txt"})
    call_id = start.tool_calls[0]["call_id"]

    def result(depth: int) -> bytes:
        return request(f'{{"type":"tool_result","call_id":"{call_id}","result":{nested(depth)}}}', "s-deep")

    status, body = await post(agent_runtime, path, result(300))
    assert status == 400 and body["error"]["code"] == "INVALID_FORMAT", body
    agent_runtime.upstream.reply_text("done")
    status, _ = await post(agent_runtime, path, result(DEEPEST_RESULT))
    assert status == 200
    session = await agent_runtime.wait_until_idle("s-deep")
    assert session["messages"][-1] == {"role": "assistant", "content": "done"}


DEEPEST_RESULT = 198
"""pydantic's parser takes 200 levels: the body and its message are two of them."""
