"""A turn end to end: agent-runtime → real llm-proxy → scripted model, over loopback HTTP and SSE."""

from __future__ import annotations

import orjson
import pytest

from codelab_common.testing import ScriptedReply
from tests.fixtures.agent_runtime import RunningAgentRuntime


def user(content: str, message_id: str | None = None) -> dict[str, object]:
    return {"type": "user_message", "content": content, "message_id": message_id}


def tool_names(request: dict[str, object]) -> list[str]:
    return [tool["function"]["name"] for tool in request.get("tools") or []]  # type: ignore[attr-defined, index]


async def test_plain_answer_streams_as_deltas_then_a_final_frame(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_text("Hello there, how can I help?")

    step = await agent_runtime.send("s-plain", user("hi", "m-1"))

    assert step.status == 200
    deltas, final = step.frames[:-1], step.frames[-1]
    assert len(deltas) > 1
    assert all(f["type"] == "assistant_message" and not f["is_final"] for f in deltas)
    assert all(f["content"] == f["token"] and f["message_id"] == "m-1" for f in deltas)
    assert "".join(f["content"] for f in deltas) == "Hello there, how can I help?"
    assert final == {"type": "assistant_message", "message_id": "m-1", "content": "", "token": "", "is_final": True}
    assert step.done == {"status": "completed", "pending_call_ids": []}
    sent = agent_runtime.upstream.requests[0]
    assert sent["model"] == "fake-model"
    assert sent["messages"][0]["role"] == "system"
    assert sent["messages"][1:] == [{"role": "user", "content": "hi"}]


async def test_flat_legacy_body_starts_a_turn_with_a_generated_message_id(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_text("ok")

    step = await agent_runtime.step({"session_id": "s-flat", "type": "user_message", "content": "hello"})

    assert step.text == "ok"
    assert step.done is not None and step.done["status"] == "completed"
    assert step.frames[0]["message_id"].startswith("msg_")
    assert agent_runtime.upstream.requests[0]["messages"][-1] == {"role": "user", "content": "hello"}


async def test_multi_step_turn_takes_results_in_any_order_and_continues(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_tool_calls(("read_file", {"path": "main.py"}), ("git_diff", {}), text="Let me look.")
    upstream.reply_tool_calls(("write_file", {"path": "main.py", "content": "print(2)\n"}))
    upstream.reply_text("Done: main.py now prints 2.")

    first = await agent_runtime.send("s-multi", user("fix main.py", "m-7"))

    assert first.text == "Let me look."
    read, diff = first.tool_calls
    assert (read["tool_name"], read["arguments"], read["requires_approval"]) == (
        "read_file",
        {"path": "main.py"},
        False,
    )
    assert (diff["tool_name"], diff["arguments"], diff["requires_approval"]) == ("git.diff", {}, False)
    assert read["message_id"] == diff["message_id"] == "m-7"
    assert first.done == {"status": "awaiting_tool_results", "pending_call_ids": [read["call_id"], diff["call_id"]]}

    diff_result = {"type": "tool_result", "call_id": diff["call_id"], "result": "no diff"}
    later = await agent_runtime.send("s-multi", diff_result)
    assert later.frames == []
    assert later.done == {"status": "awaiting_tool_results", "pending_call_ids": [read["call_id"]]}
    assert len(upstream.requests) == 1

    result = {"success": True, "content": "print(1)\n"}
    second = await agent_runtime.send("s-multi", {"type": "tool_result", "call_id": read["call_id"], "result": result})
    (write,) = second.tool_calls
    assert (write["tool_name"], write["requires_approval"]) == ("write_file", True)
    assert second.done is not None and second.done["status"] == "awaiting_tool_results"

    third = await agent_runtime.send(
        "s-multi", {"type": "tool_result", "call_id": write["call_id"], "result": {"success": True}}
    )
    assert third.text == "Done: main.py now prints 2."
    assert third.frames[-1]["is_final"] is True
    assert third.done == {"status": "completed", "pending_call_ids": []}

    continued = upstream.requests[1]["messages"]
    assistant, *tools = continued[2:]
    assert assistant["role"] == "assistant" and assistant["content"] == "Let me look."
    assert [c["id"] for c in assistant["tool_calls"]] == [read["call_id"], diff["call_id"]]
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["read_file", "git_diff"]
    assert tools == [
        {"role": "tool", "tool_call_id": read["call_id"], "content": orjson.dumps(result).decode()},
        {"role": "tool", "tool_call_id": diff["call_id"], "content": "no diff"},
    ]
    systems = {request["messages"][0]["content"] for request in upstream.requests}
    assert len(systems) == 1, "the system prompt must be byte-identical across the turn's model calls"


async def test_tool_error_and_user_rejection_are_told_to_the_model(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_tool_calls(("write_file", {"path": "a.txt", "content": "x"}), ("read_file", {"path": "gone.py"}))
    upstream.reply_text("Understood, I left a.txt alone.")
    first = await agent_runtime.send("s-reject", user("write a.txt"))
    write, read = first.tool_calls

    await agent_runtime.send(
        "s-reject", {"type": "tool_result", "call_id": write["call_id"], "error": "Операция отклонена: write_file"}
    )
    last = await agent_runtime.send(
        "s-reject",
        {"type": "tool_result", "call_id": read["call_id"], "error": "Ошибка выполнения [file_not_found]: gone.py"},
    )

    assert last.text == "Understood, I left a.txt alone."
    tool_messages = {m["tool_call_id"]: m["content"] for m in upstream.requests[1]["messages"] if m["role"] == "tool"}
    rejection = orjson.loads(tool_messages[write["call_id"]])
    assert rejection["error"] == "Операция отклонена: write_file"
    assert rejection["rejected_by_user"] is True
    assert "Do not repeat it" in rejection["note"]
    assert orjson.loads(tool_messages[read["call_id"]]) == {"error": "Ошибка выполнения [file_not_found]: gone.py"}


async def test_invalid_arguments_go_back_to_the_model_not_to_the_client(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    broken = {"id": "call_broken", "name": "read_file", "arguments": '{"path": "main.py"'}
    upstream.replies.append(ScriptedReply(tool_calls=[broken]))
    upstream.reply_text("Sorry, here is the answer.")

    step = await agent_runtime.send("s-badargs", user("read main.py"))

    assert step.tool_calls == []
    assert step.text == "Sorry, here is the answer."
    assert step.done is not None and step.done["status"] == "completed"
    assert len(upstream.requests) == 2
    assistant, tool = upstream.requests[1]["messages"][-2:]
    assert assistant["tool_calls"][0]["function"]["arguments"] == "{}"
    assert tool["tool_call_id"] == assistant["tool_calls"][0]["id"]
    assert "not valid JSON" in orjson.loads(tool["content"])["error"]


async def test_missing_required_argument_is_an_error_for_the_model(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_tool_calls(("read_file", {"line": 3}))
    agent_runtime.upstream.reply_text("I need a path.")

    step = await agent_runtime.send("s-noarg", user("read it"))

    assert step.tool_calls == []
    tool = agent_runtime.upstream.requests[1]["messages"][-1]
    assert orjson.loads(tool["content"]) == {"error": "read_file needs the argument(s) path"}


async def test_a_tool_not_offered_is_refused_back_to_the_model(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_tool_calls(("run_command", {"command": "rm -rf /"}), ("read_file", {"path": "a.py"}))
    upstream.reply_text("All good.")

    first = await agent_runtime.send("s-offer", user("clean up"), tools=["read_file", "list_files"])

    (read,) = first.tool_calls
    assert read["tool_name"] == "read_file"
    assert first.done == {"status": "awaiting_tool_results", "pending_call_ids": [read["call_id"]]}
    done = await agent_runtime.send("s-offer", {"type": "tool_result", "call_id": read["call_id"], "result": "x=1"})
    assert done.text == "All good."
    refused, answered = [m for m in upstream.requests[1]["messages"] if m["role"] == "tool"]
    assert "no tool 'run_command'" in orjson.loads(refused["content"])["error"]
    assert answered == {"role": "tool", "tool_call_id": read["call_id"], "content": "x=1"}


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        (None, ["read_file", "write_file", "list_files", "search_in_project", "create_directory", "git_diff",
                "apply_patch", "run_command", "prompt_user"]),
        (["git.diff", "read_file", "no_such_tool"], ["read_file", "git_diff"]),
        ([], []),
    ],
)  # fmt: skip
async def test_tools_filter_decides_the_definitions_sent_upstream(
    agent_runtime: RunningAgentRuntime, tools: list[str] | None, expected: list[str]
) -> None:
    agent_runtime.upstream.reply_text("ok")

    await agent_runtime.send("s-filter", user("hi"), tools=tools)

    sent = agent_runtime.upstream.requests[0]
    assert tool_names(sent) == expected
    prompt = sent["messages"][0]["content"]
    assert ("You have no tools" in prompt) == (not expected)


async def test_history_carries_over_to_the_next_turn(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_text("Paris.")
    agent_runtime.upstream.reply_text("About 2 million.")
    await agent_runtime.send("s-history", user("Capital of France?"))

    await agent_runtime.send("s-history", user("Population?"))

    assert agent_runtime.upstream.requests[1]["messages"][1:] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "Population?"},
    ]
    assert agent_runtime.upstream.requests[0]["messages"][0] == agent_runtime.upstream.requests[1]["messages"][0]


@pytest.mark.parametrize("agent_runtime_overrides", [{"context_max_chars": 1000}], indirect=True)
async def test_old_turns_are_left_out_beyond_the_context_budget(agent_runtime: RunningAgentRuntime) -> None:
    for index in range(3):
        agent_runtime.upstream.reply_text(f"answer {index} " + "x" * 400)
        await agent_runtime.send("s-window", user(f"question {index} " + "y" * 100))

    agent_runtime.upstream.reply_text("short")
    await agent_runtime.send("s-window", user("last question"))

    messages = agent_runtime.upstream.requests[-1]["messages"]
    assert messages[1]["role"] == "user"
    assert messages[-1] == {"role": "user", "content": "last question"}
    assert not any(m["content"].startswith("question 0") for m in messages[1:])
    status, session = await agent_runtime.session("s-window")
    assert status == 200 and len(session["messages"]) == 8, "the stored history keeps every message"


@pytest.mark.parametrize("agent_runtime_overrides", [{"tool_result_max_chars": 500}], indirect=True)
async def test_long_tool_output_is_truncated_with_a_note(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_tool_calls(("run_command", {"command": "cat big.log"}))
    agent_runtime.upstream.reply_text("The log is long.")
    first = await agent_runtime.send("s-long", user("show the log"))
    call_id = first.tool_calls[0]["call_id"]

    await agent_runtime.send("s-long", {"type": "tool_result", "call_id": call_id, "result": {"stdout": "z" * 5000}})

    content = agent_runtime.upstream.requests[1]["messages"][-1]["content"]
    assert content.startswith('{"stdout":"zzz')
    assert len(content) < 600
    assert content.endswith("[truncated: 4513 more characters not shown]")


async def test_a_repeated_identical_call_gets_an_answer_without_tools(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_tool_calls(("read_file", {"path": "main.py"}))
    upstream.reply_tool_calls(("read_file", {"path": "main.py"}))
    upstream.reply_text("main.py prints hi.")

    first = await agent_runtime.send("s-repeat", user("What does main.py do?"))
    (call,) = first.tool_calls
    result = {"type": "tool_result", "call_id": call["call_id"], "result": {"success": True, "content": "print('hi')"}}
    second = await agent_runtime.send("s-repeat", result)

    assert second.tool_calls == []
    assert second.text == "main.py prints hi."
    assert second.done is not None and second.done["status"] == "completed"
    assert len(upstream.requests) == 3
    assert "tool_choice" not in upstream.requests[1]
    assert upstream.requests[2]["tool_choice"] == "none"
    history = upstream.requests[2]["messages"]
    assert [m["role"] for m in history[1:]] == ["user", "assistant", "tool"]
