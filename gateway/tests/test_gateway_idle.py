"""A connection whose session has been idle `follow_idle_s` holds no event stream to agent-runtime: the gateway
follows a session while a turn runs or calls wait, and again from where it stopped once the client's next input is
accepted."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest

from codelab_common.testing import metric_value
from tests.fixtures.agent_runtime import RunningAgentRuntime
from tests.fixtures.gateway import RunningGateway

soon_idle = pytest.mark.parametrize("gateway_overrides", [{"metrics_open": True, "follow_idle_s": 0.2}])


async def following(gateway: RunningGateway) -> float:
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}/metrics") as response:
        return metric_value(await response.text(), "gateway_following")


async def settles_at(gateway: RunningGateway, value: float, timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while await following(gateway) != value:  # noqa: ASYNC110 (a metric, polled: nothing to wait on)
            await asyncio.sleep(0.05)


def seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [frame["seq"] for frame in frames]


@soon_idle
async def test_an_idle_connection_holds_no_stream_and_its_next_message_is_served(gateway: RunningGateway) -> None:
    async with gateway.connect("idle-next") as client:
        await settles_at(gateway, 0)  # a new session is idle: nothing to follow
        gateway.upstream.reply_text("First answer.", chunk_delay=0.01)
        await client.say("one", message_id="m1")
        first = await client.turn()
        await settles_at(gateway, 0)

        gateway.upstream.reply_text("Second answer.", chunk_delay=0.01)
        await client.say("two", message_id="m2")
        second = await client.turn()
        await settles_at(gateway, 0)

    assert seqs(first + second) == list(range(1, len(first) + len(second) + 1)), "one log, no gap, no repeat"
    assert [f["stop_reason"] for f in (first[-1], second[-1])] == ["completed", "completed"]
    assert "".join(f["content"] for f in second if f["type"] == "assistant_message") == "Second answer."


@soon_idle
async def test_a_connection_follows_while_a_tool_call_waits(gateway: RunningGateway) -> None:
    gateway.upstream.reply_tool_calls(("read_file", {"path": "a.txt"}))
    gateway.upstream.reply_text("Read it.")
    async with gateway.connect("idle-tool") as client:
        await client.say("read a.txt")
        call = (await client.recv_until(lambda f: f["type"] == "tool_call"))[-1]
        await asyncio.sleep(0.3)
        assert await following(gateway) == 1, "a waiting call is not idle"
        await client.send({"type": "tool_result", "call_id": call["call_id"], "result": {"content": "hello"}})
        rest = await client.turn()
        await settles_at(gateway, 0)
    assert rest[-1]["stop_reason"] == "completed"


@soon_idle
async def test_frames_written_by_another_client_while_idle_arrive_before_the_next_turn(
    gateway: RunningGateway, agent_runtime: RunningAgentRuntime
) -> None:
    """Nothing is lost: a turn someone else ran on the session (here the seed's HTTP API) while this connection was
    idle reaches it, in order, when its own next input is accepted."""
    async with gateway.connect("idle-other") as client:
        gateway.upstream.reply_text("Mine.")
        await client.say("mine", message_id="m1")
        first = await client.turn()
        await settles_at(gateway, 0)

        gateway.upstream.reply_text("Theirs.")
        body = orjson.dumps({"session_id": "idle-other", "message": {"type": "user_message", "content": "theirs"}})
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{agent_runtime.url}/agent/message/stream", data=body, headers=agent_runtime.headers) as sse,
        ):
            assert b"event: done" in await sse.read()

        gateway.upstream.reply_text("Mine again.")
        await client.say("mine again", message_id="m3")
        rest = await client.recv_until(lambda f: f.get("is_final") is True and f["message_id"] == "m3")

    frames = first + rest
    assert seqs(frames) == list(range(1, len(frames) + 1))
    finals = [f for f in frames if f.get("is_final")]
    assert len(finals) == 3 and finals[0]["message_id"] == "m1" and finals[-1]["message_id"] == "m3"
    assert "Theirs." in "".join(f["content"] for f in frames if f["type"] == "assistant_message")


@pytest.mark.parametrize("gateway_overrides", [{"metrics_open": True, "follow_idle_s": 5}])
async def test_a_connection_keeps_following_a_while_after_a_turn(gateway: RunningGateway) -> None:
    """A client that sends its next message soon after the last answer finds the stream still open: no new one per
    turn (opening one costs the two services about a quarter of a short turn's CPU)."""
    gateway.upstream.reply_text("Quick.")
    async with gateway.connect("idle-linger") as client:
        await client.say("quick")
        await client.turn()
        await asyncio.sleep(0.5)
        assert await following(gateway) == 1
