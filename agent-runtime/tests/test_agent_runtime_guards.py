"""What keeps a session sane: step limit, BUSY, stale tool calls, unknown call ids, a failing model."""

from __future__ import annotations

import asyncio

import aiohttp
import orjson
import pytest

from codelab_common.testing import free_port
from tests.fixtures.agent_runtime import AgentRuntimeFactory, RunningAgentRuntime


def user(content: str) -> dict[str, object]:
    return {"type": "user_message", "content": content}


def result(call_id: str, value: object = "ok") -> dict[str, object]:
    return {"type": "tool_result", "call_id": call_id, "result": value}


@pytest.mark.parametrize("agent_runtime_overrides", [{"max_steps": 2}], indirect=True)
async def test_the_last_allowed_step_asks_for_an_answer_without_tools(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_tool_calls(("list_files", {"path": "."}))
    agent_runtime.upstream.reply_text("There are two files.")

    first = await agent_runtime.send("s-limit", user("loop forever"))
    last = await agent_runtime.send("s-limit", result(first.tool_calls[0]["call_id"]))

    assert [r.get("tool_choice") for r in agent_runtime.upstream.requests] == [None, "none"]
    assert last.text == "There are two files." and last.errors == []
    assert last.done == {"status": "completed", "pending_call_ids": []}
    _, session = await agent_runtime.session("s-limit")
    assert session["status"] == "idle"


async def test_user_message_while_tools_pending_is_busy_and_changes_nothing(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_tool_calls(("read_file", {"path": "a.py"}))
    first = await agent_runtime.send("s-busy", user("read a.py"))
    call_id = first.tool_calls[0]["call_id"]
    _, before = await agent_runtime.session("s-busy")

    busy = await agent_runtime.send("s-busy", user("never mind"))

    assert [e["code"] for e in busy.errors] == ["BUSY"]
    assert busy.done == {"status": "failed", "pending_call_ids": [call_id]}
    _, after = await agent_runtime.session("s-busy")
    assert after["messages"] == before["messages"] and after["status"] == "awaiting_tool_results"
    assert len(agent_runtime.upstream.requests) == 1
    agent_runtime.upstream.reply_text("a.py is empty")
    assert (await agent_runtime.send("s-busy", result(call_id, ""))).text == "a.py is empty"


async def test_second_request_while_a_step_streams_is_busy(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_text("slow answer " * 5, chunk_delay=0.05)
    running = asyncio.create_task(agent_runtime.send("s-race", user("take your time")))
    for _ in range(100):
        _, session = await agent_runtime.session("s-race")
        if session.get("status") == "running":
            break
        await asyncio.sleep(0.02)

    busy = await agent_runtime.send("s-race", user("hello?"))

    assert [e["code"] for e in busy.errors] == ["BUSY"]
    assert busy.done is not None and busy.done["status"] == "failed"
    finished = await running
    assert finished.text == "slow answer " * 5 and finished.done is not None
    assert finished.done["status"] == "completed"
    assert len(agent_runtime.upstream.requests) == 1


@pytest.mark.parametrize("agent_runtime_overrides", [{"tool_timeout_s": 0.3}], indirect=True)
async def test_an_unanswered_tool_call_times_out_and_the_turn_goes_on(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_tool_calls(("read_file", {"path": "a.py"}))
    agent_runtime.upstream.reply_text("The command timed out, so I cannot list.")
    first = await agent_runtime.send("s-stale", user("list"))
    call_id = first.tool_calls[0]["call_id"]

    rest = await agent_runtime.events("s-stale", first.frames[-1]["seq"], until=is_final)

    [timeout] = [frame for frame in rest if frame["type"] == "error"]
    assert timeout["code"] == "TOOL_TIMEOUT" and timeout["call_id"] == call_id
    assert "".join(f.get("content", "") for f in rest if f["type"] == "assistant_message").startswith("The command")
    tool = agent_runtime.upstream.requests[1]["messages"][-1]
    assert tool["tool_call_id"] == call_id and "timed out" in orjson.loads(tool["content"])["error"]
    await agent_runtime.wait_until_idle("s-stale")
    late = await agent_runtime.send("s-stale", result(call_id))
    assert [e["code"] for e in late.errors] == ["UNKNOWN_CALL_ID"]
    agent_runtime.upstream.reply_text("Hi again.")
    assert (await agent_runtime.send("s-stale", user("are you there?"))).text == "Hi again."


def is_final(frame: dict[str, object]) -> bool:
    return frame["type"] == "assistant_message" and bool(frame["is_final"])


async def test_result_for_an_unknown_call_id_is_refused(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_tool_calls(("read_file", {"path": "a.py"}))
    first = await agent_runtime.send("s-unknown", user("read"))
    call_id = first.tool_calls[0]["call_id"]

    wrong = await agent_runtime.send("s-unknown", result("call_nope"))
    fresh = await agent_runtime.send("s-never-seen", result("call_nope"))

    assert wrong.errors[0]["code"] == "UNKNOWN_CALL_ID" and wrong.errors[0]["call_id"] == "call_nope"
    assert wrong.done == {"status": "failed", "pending_call_ids": [call_id]}
    assert fresh.errors[0]["code"] == "UNKNOWN_CALL_ID"
    assert (await agent_runtime.session("s-never-seen"))[0] == 404
    agent_runtime.upstream.reply_text("done")
    assert (await agent_runtime.send("s-unknown", result(call_id))).text == "done"


async def test_model_failure_is_llm_error_and_the_next_message_works(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_error(500, "model crashed")

    failed = await agent_runtime.send("s-llm", user("first"))

    (error,) = failed.errors
    assert error["code"] == "LLM_ERROR" and "model crashed" in error["content"]
    assert failed.done == {"status": "failed", "pending_call_ids": []}
    agent_runtime.upstream.reply_text("Back online.")
    retry = await agent_runtime.send("s-llm", user("second"))
    assert retry.text == "Back online."
    failure_kept = "(the model failed before answering)"
    history = [m["content"] for m in agent_runtime.upstream.requests[-1]["messages"][1:]]
    assert history == ["first", failure_kept, "second"]


async def test_model_failure_after_tool_results_keeps_history_consistent(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_tool_calls(("read_file", {"path": "a.py"}))
    upstream.reply_error(503, "overloaded")
    upstream.reply_text("Now it works.")
    first = await agent_runtime.send("s-llm-mid", user("read a.py"))
    call_id = first.tool_calls[0]["call_id"]

    failed = await agent_runtime.send("s-llm-mid", result(call_id, "x = 1"))
    retry = await agent_runtime.send("s-llm-mid", user("try again"))

    assert failed.errors[0]["code"] == "LLM_ERROR" and failed.done is not None
    assert failed.done["status"] == "failed"
    assert retry.text == "Now it works."
    roles = [m["role"] for m in upstream.requests[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]


async def test_llm_proxy_unreachable_is_llm_error(agent_runtime_factory: AgentRuntimeFactory) -> None:
    async with agent_runtime_factory(llm_proxy_url=f"http://127.0.0.1:{free_port()}") as agent_runtime:
        step = await agent_runtime.send("s-down", user("hello"))
        status, session = await agent_runtime.session("s-down")

    assert step.errors[0]["code"] == "LLM_ERROR" and "unreachable" in step.errors[0]["content"]
    assert step.done == {"status": "failed", "pending_call_ids": []}
    failure_kept = {"role": "assistant", "content": "(the model failed before answering)"}
    assert status == 200 and session["messages"] == [{"role": "user", "content": "hello"}, failure_kept]
    assert session["status"] == "idle"


async def test_the_turn_goes_on_when_the_caller_hangs_up(agent_runtime: RunningAgentRuntime) -> None:
    answer = "a long answer nobody reads " * 20
    agent_runtime.upstream.reply_text(answer, chunk_delay=0.01)
    body = orjson.dumps({"session_id": "s-hangup", "message": user("talk")})
    async with aiohttp.ClientSession() as http:
        response = await http.post(
            f"{agent_runtime.url}/agent/message/stream", data=body, headers=agent_runtime.headers
        )
        assert (await response.content.readline()) == b"event: message\n"
        response.close()

    session = await agent_runtime.wait_until_idle("s-hangup")
    agent_runtime.upstream.reply_text("I am here.")
    step = await agent_runtime.send("s-hangup", user("still there?"))

    assert session["messages"][-1] == {"role": "assistant", "content": answer}
    assert step.text == "I am here."
    messages = agent_runtime.upstream.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


async def test_a_model_repeating_a_failing_call_is_stopped_with_a_clear_error(
    agent_runtime: RunningAgentRuntime,
) -> None:
    upstream = agent_runtime.upstream
    for _ in range(3):
        upstream.reply_tool_calls(("read_file", {"path": "missing.py"}))
    first = await agent_runtime.send("s-loop", user("read missing.py"))
    [call] = first.tool_calls
    failed = {"type": "tool_result", "call_id": call["call_id"], "error": "[file_not_found] missing.py"}

    step = await agent_runtime.send("s-loop", failed)

    [error] = step.errors
    assert error["code"] == "REPEATED_CALL" and "read_file" in error["content"] and "file_not_found" in error["content"]
    assert step.frames[-1]["stop_reason"] == "error" and step.tool_calls == []
    assert len(upstream.requests) == 3, "the third identical call stopped the turn; no further model call"
    session = await agent_runtime.wait_until_idle("s-loop")
    assert session["messages"][-1]["content"].startswith("I stopped: the model kept calling read_file")
    upstream.reply_text("Here is another way.")
    assert (await agent_runtime.send("s-loop", user("try differently"))).text == "Here is another way."
