"""A turn whose agent-runtime stopped mid-answer is closed by the next instance: the client is told, what it saw
stays in the history, and the session goes on."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson

from codelab_agent_runtime.turns.expiry import grace
from tests.fixtures.agent_runtime import AgentRuntimeFactory


async def test_an_orphaned_turn_is_closed_with_agent_down_and_keeps_what_was_shown(
    agent_runtime_factory: AgentRuntimeFactory,
) -> None:
    shown: list[dict[str, Any]] = []
    async with agent_runtime_factory(lease_ttl_s=1.0) as first:
        first.upstream.reply_text("word " * 200, chunk_size=5, chunk_delay=0.05)
        body = orjson.dumps({"session_id": "s-orphan", "message": {"type": "user_message", "content": "talk"}})
        async with aiohttp.ClientSession() as http:
            response = await http.post(f"{first.url}/agent/message/stream", data=body, headers=first.headers)
            async for line in response.content:
                if line.startswith(b"data: "):
                    shown.append(orjson.loads(line[6:]))
                if len(shown) == 6:
                    break
            response.close()
        # Leaving the block stops this instance: its step is cancelled without a write, its lease left to expire.
    async with agent_runtime_factory(lease_ttl_s=1.0) as second:
        rest = await second.events("s-orphan", shown[-1]["seq"], until=lambda f: bool(f.get("is_final")), timeout=8)
        session = await second.wait_until_idle("s-orphan")
        second.upstream.reply_text("I am back.")
        again = await second.send("s-orphan", {"type": "user_message", "content": "go on"})

    error, final = rest[-2], rest[-1]
    assert error["type"] == "error" and error["code"] == "AGENT_DOWN"
    assert final["stop_reason"] == "error"
    frames = shown + rest
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    seen = "".join(f.get("content", "") for f in frames if f["type"] == "assistant_message")
    assert seen.startswith("word") and session["messages"][-1] == {"role": "assistant", "content": seen}
    assert again.text == "I am back."


async def test_a_restarted_instance_takes_over_a_session_whose_step_it_lost(
    agent_runtime_factory: AgentRuntimeFactory,
) -> None:
    """A user message right after a restart is BUSY only until the old lease has expired and stayed so for the
    grace period (on the new instance's own clock); then the session is served again."""
    async with agent_runtime_factory(lease_ttl_s=1.0) as first:
        first.upstream.reply_text("word " * 200, chunk_size=5, chunk_delay=0.05)
        status, _ = await first.input("s-restart", {"type": "user_message", "content": "talk"})
        assert status == 200
        await asyncio.sleep(0.3)
    async with agent_runtime_factory(lease_ttl_s=1.0) as second:
        restarted = time.monotonic()
        busy_status, busy = await second.input("s-restart", {"type": "user_message", "content": "again"})
        session = await second.wait_until_idle("s-restart", timeout=1.0 + grace(1.0) + 2.0)
        taken_over = time.monotonic() - restarted
        second.upstream.reply_text("fresh")
        step = await second.send("s-restart", {"type": "user_message", "content": "again"})
    assert (busy_status, busy["error"]["code"]) == (409, "BUSY")
    assert taken_over >= grace(1.0), "a lease is believed dead only after the grace period"
    assert session["messages"][-1]["role"] == "assistant"
    assert step.text == "fresh"
