"""`GET /metrics`: what a turn with a tool call leaves in the counters, and who may read them."""

from __future__ import annotations

import aiohttp
import pytest

from codelab_common.testing import metric_value
from tests.fixtures.agent_runtime import RunningAgentRuntime


async def scrape(agent_runtime: RunningAgentRuntime, headers: dict[str, str]) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{agent_runtime.url}/metrics", headers=headers) as response,
    ):
        return response.status, await response.text()


async def test_a_turn_with_an_approved_tool_call_is_counted(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_tool_calls(("write_file", {"path": "a.py", "content": "print(1)\n"}))
    upstream.reply_text("Written.")
    first = await agent_runtime.send("m-1", {"type": "user_message", "content": "write a.py"})
    [call] = first.tool_calls
    assert call["requires_approval"] is True
    second = await agent_runtime.send("m-1", {"type": "tool_result", "call_id": call["call_id"], "result": {"ok": 1}})
    assert second.done == {"status": "completed", "pending_call_ids": []}

    status, text = await scrape(agent_runtime, agent_runtime.headers)

    assert status == 200
    assert metric_value(text, "agent_runtime_turns_total", outcome="completed") == 1
    assert metric_value(text, "agent_runtime_turn_model_calls_count") == 1
    assert metric_value(text, "agent_runtime_turn_model_calls_sum") == 2
    assert metric_value(text, "agent_runtime_tool_calls_total", tool="write_file", outcome="ok") == 1
    assert metric_value(text, "agent_runtime_approval_decisions_total", tool="write_file", decision="approve") == 1
    assert metric_value(text, "agent_runtime_tool_round_trip_seconds_count", tool="write_file") == 1
    assert metric_value(text, "agent_runtime_model_time_to_first_token_seconds_count") == 2


async def test_rejections_timeouts_and_failed_turns_are_told_apart(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_tool_calls(("run_command", {"command": "rm -rf build"}), ("read_file", {"path": "a.py"}))
    upstream.reply_error(500, "model server down")
    first = await agent_runtime.send("m-2", {"type": "user_message", "content": "clean up"})
    run, read = first.tool_calls
    await agent_runtime.send("m-2", {"type": "approval", "call_id": run["call_id"], "decision": "reject"})
    await agent_runtime.send(
        "m-2", {"type": "tool_result", "call_id": read["call_id"], "error": "tool timed out after 120 s"}
    )

    _, text = await scrape(agent_runtime, agent_runtime.headers)

    assert metric_value(text, "agent_runtime_tool_calls_total", tool="run_command", outcome="rejected") == 1
    assert metric_value(text, "agent_runtime_tool_calls_total", tool="read_file", outcome="timeout") == 1
    assert metric_value(text, "agent_runtime_approval_decisions_total", tool="run_command", decision="reject") == 1
    assert metric_value(text, "agent_runtime_approval_decisions_total", tool="read_file", decision="approve") == 0
    assert metric_value(text, "agent_runtime_turns_total", outcome="model_error") == 1
    assert metric_value(text, "agent_runtime_turns_total", outcome="completed") == 0


async def test_metrics_need_the_key_unless_opened(agent_runtime: RunningAgentRuntime) -> None:
    assert (await scrape(agent_runtime, {}))[0] == 401


@pytest.mark.parametrize("agent_runtime_overrides", [{"metrics_open": True}], indirect=True)
async def test_metrics_open_serves_them_without_the_key(agent_runtime: RunningAgentRuntime) -> None:
    status, text = await scrape(agent_runtime, {})
    assert status == 200 and "agent_runtime_turns_total" in text
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{agent_runtime.url}/agent/sessions/none") as other,
    ):
        assert other.status == 401
