"""Plans: the model's update_plan calls, carried out by agent-runtime, become plan_update / plan_progress frames that
are logged, replayed and kept across a restart."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.fixtures.agent_runtime import AgentRuntimeFactory, RunningAgentRuntime


def user(content: str) -> dict[str, Any]:
    return {"type": "user_message", "content": content}


def steps(*statuses: str) -> list[dict[str, str]]:
    texts = ["Read calc.py", "Fix add", "Run the tests"]
    return [{"id": str(i + 1), "text": texts[i], "status": status} for i, status in enumerate(statuses)]


def tool_names(request: dict[str, Any]) -> list[str]:
    return sorted(tool["function"]["name"] for tool in request.get("tools") or [])


async def test_a_plan_is_sent_whole_then_step_by_step(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_tool_calls(
        ("update_plan", {"steps": steps("running", "pending", "pending")}), ("read_file", {"path": "calc.py"})
    )
    upstream.reply_tool_calls(("update_plan", {"steps": steps("done", "running", "pending"), "current_step": "2"}))
    upstream.reply_text("Plan set.")

    first = await agent_runtime.send("s-plan", user("fix add"), tools=["read_file"])

    assert "update_plan" in tool_names(upstream.requests[0]), "offered although the client does not run it"
    [update] = first.of_type("plan_update")
    assert update["steps"] == steps("running", "pending", "pending") and update["current_step"] == "1"
    assert [f["type"] for f in first.frames[1:]] == ["plan_update", "tool_call"], "only read_file goes to the client"
    [call] = first.tool_calls
    second = await agent_runtime.send("s-plan", {"type": "tool_result", "call_id": call["call_id"], "result": {}})

    progress = second.of_type("plan_progress")
    assert [(p["step_id"], p["status"]) for p in progress] == [("1", "done"), ("2", "running")]
    assert {p["plan_id"] for p in progress} == {update["plan_id"]}
    told = [m["content"] for m in upstream.requests[1]["messages"] if m["role"] == "tool"]
    assert orjson.loads(told[0]) == {"ok": True, "steps": 3, "done": 0, "current_step": "1"}
    assert second.text == "Plan set."


async def test_a_plan_outlives_a_restart_and_a_later_turn_gets_it_whole(
    agent_runtime_factory: AgentRuntimeFactory,
) -> None:
    async with agent_runtime_factory() as first:
        first.upstream.reply_tool_calls(("update_plan", {"steps": steps("running", "pending", "pending")}))
        first.upstream.reply_text("Started.")
        made = await first.send("s-plan-restart", user("go"))
    async with agent_runtime_factory() as second:
        replayed = await second.events("s-plan-restart", 0, until=lambda f: f["type"] == "plan_update")
        assert replayed[-1] == made.of_type("plan_update")[0]
        second.upstream.reply_tool_calls(("update_plan", {"steps": steps("done", "running", "pending")}))
        second.upstream.reply_text("Next.")
        later = await second.send("s-plan-restart", user("go on"))
    [whole] = later.of_type("plan_update")
    assert whole["plan_id"] == made.of_type("plan_update")[0]["plan_id"]
    assert whole["steps"] == steps("done", "running", "pending") and later.of_type("plan_progress") == []


async def test_a_different_plan_gets_a_new_id_and_a_bad_plan_goes_back_to_the_model(
    agent_runtime: RunningAgentRuntime,
) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_tool_calls(("update_plan", {"steps": steps("pending", "pending", "pending")}))
    upstream.reply_tool_calls(("update_plan", {"steps": [{"id": "a", "text": "Other work", "status": "pending"}]}))
    upstream.reply_tool_calls(("update_plan", {"steps": [{"id": "x", "text": "t", "status": "later"}]}))
    upstream.reply_text("Done planning.")

    step = await agent_runtime.send("s-plan-new", user("plan"))

    first, second = step.of_type("plan_update")
    assert first["plan_id"] != second["plan_id"]
    told = [orjson.loads(m["content"]) for m in upstream.requests[3]["messages"] if m["role"] == "tool"]
    assert "error" in told[-1] and "status" in told[-1]["error"]


@pytest.mark.parametrize("agent_runtime_overrides", [{"model_tools": ["read_file"]}], indirect=True)
async def test_model_tools_can_leave_the_plan_tool_out(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_text("ok")
    await agent_runtime.send("s-plan-off", user("hi"))
    assert tool_names(agent_runtime.upstream.requests[0]) == ["read_file"]
