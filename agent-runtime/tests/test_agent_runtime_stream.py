"""The step's SSE stream as a caller sees it: keep-alive comments while the model is slow (llm-proxy's own comments
skipped on the way in), and a caller that leaves mid-step closes the whole chain (agent-runtime → llm-proxy → model
server) at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import orjson
import pytest

from codelab_common.sse import KEEP_ALIVE, iter_sse
from tests.fixtures.agent_runtime import RunningAgentRuntime


@pytest.fixture(autouse=True)
def llm_proxy_keep_alives(monkeypatch: pytest.MonkeyPatch) -> None:
    """llm-proxy (started after this) sends its own comments every 0.1 s: agent-runtime's reader must skip them."""
    monkeypatch.setenv("LLM_PROXY__SSE_KEEP_ALIVE_S", "0.1")


STEP = {"session_id": "s-stream", "message": {"type": "user_message", "content": "hi", "message_id": "m-1"}}


async def post_step(agent_runtime: RunningAgentRuntime, http: aiohttp.ClientSession) -> aiohttp.ClientResponse:
    headers = {**agent_runtime.headers, "Content-Type": "application/json"}
    return await http.post(f"{agent_runtime.url}/agent/message/stream", data=orjson.dumps(STEP), headers=headers)


@pytest.mark.parametrize("agent_runtime_overrides", [{"sse_keep_alive_s": 0.1}], indirect=True)
async def test_a_slow_model_gets_keep_alives_that_readers_skip(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_text("slow reply", chunk_size=5, chunk_delay=0.35)
    async with aiohttp.ClientSession() as http:
        response = await post_step(agent_runtime, http)
        assert response.status == 200 and response.headers["cache-control"] == "no-cache"
        raw = await response.read()
    assert raw.count(KEEP_ALIVE) >= 4, "agent-runtime's own comments: llm-proxy's never pass through as events"

    async def lines() -> AsyncIterator[bytes]:
        for line in raw.splitlines(keepends=True):
            yield line

    events = [(event.event, orjson.loads(event.data)) async for event in iter_sse(lines())]
    frames = [data for name, data in events if name == "message" and data["type"] == "assistant_message"]
    assert "".join(frame["content"] for frame in frames) == "slow reply"
    assert events[-1] == ("done", {"status": "completed", "pending_call_ids": []})


async def test_a_cancel_closes_the_request_to_llm_proxy_and_the_model(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_text("word " * 400, chunk_size=5, chunk_delay=0.05)
    async with aiohttp.ClientSession() as http:
        response = await post_step(agent_runtime, http)
        await response.content.readuntil(b'"type":"assistant_message"')
        asked = time.monotonic()
        status, accepted = await agent_runtime.input("s-stream", {"type": "cancel", "message_id": "m-1"})
        raw = await response.read()
    await until(lambda: bool(upstream.closed_early))
    assert status == 200 and accepted["status"] == "accepted"
    assert upstream.closed_early[0] - asked < 0.5, "the model server's request closes within moments"
    assert upstream.streams_cut == 1
    final = orjson.loads(raw.split(b"data: ")[-2].split(b"\n")[0])
    assert final["is_final"] and final["stop_reason"] == "cancelled"
    assert raw.endswith(b'event: done\ndata: {"status":"cancelled","pending_call_ids":[]}\n\n')


async def test_what_was_said_stays_after_a_cancel_and_the_next_message_works(
    agent_runtime: RunningAgentRuntime,
) -> None:
    agent_runtime.upstream.reply_text("word " * 400, chunk_size=5, chunk_delay=0.05)
    async with aiohttp.ClientSession() as http:
        response = await post_step(agent_runtime, http)
        head = await response.content.readuntil(b"\n\n")
        head += await response.content.readuntil(b"\n\n")
        await agent_runtime.input("s-stream", {"type": "cancel"})
        raw = head + await response.read()
    shown = "".join(
        orjson.loads(line[6:])["content"] for line in raw.splitlines() if line.startswith(b'data: {"type":"assis')
    )
    agent_runtime.upstream.reply_text("second answer")
    again = await agent_runtime.send("s-stream", {"type": "user_message", "content": "again", "message_id": "m-2"})
    assert again.text == "second answer" and again.done == {"status": "completed", "pending_call_ids": []}
    history = agent_runtime.upstream.requests[-1]["messages"]
    assert shown.startswith("word") and history[-2] == {"role": "assistant", "content": shown}


async def until(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
