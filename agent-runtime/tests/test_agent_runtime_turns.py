"""A turn end to end: agent-runtime → real llm-proxy → scripted model, over loopback HTTP and SSE."""

from __future__ import annotations

import orjson
import pytest

from codelab_common.testing import ScriptedReply
from tests.fixtures.agent_runtime import RunningAgentRuntime


def user(content: str, message_id: str | None = None) -> dict[str, object]:
    return {"type": "user_message", "content": content, "message_id": message_id}


CLIENT_TOOLS = ["read_file", "write_file", "edit_file", "list_files", "run_command"]
"""What a client that names its tools (the terminal client, the IDE) declares."""


def tool_names(request: dict[str, object]) -> list[str]:
    return [tool["function"]["name"] for tool in request.get("tools") or []]  # type: ignore[attr-defined, index]


async def test_plain_answer_streams_as_deltas_then_a_final_frame(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_text("Hello there, how can I help?", chunk_delay=0.03)

    step = await agent_runtime.send("s-plain", user("hi", "m-1"))

    assert step.status == 200
    ack, deltas, final = step.frames[0], step.frames[1:-1], step.frames[-1]
    assert ack == {"type": "ack", "status": "received", "message_id": "m-1", "seq": 1}
    assert [f["seq"] for f in step.frames] == list(range(1, len(step.frames) + 1))
    assert len(deltas) >= 5  # paced tokens go out one by one, not held back
    assert all(f["type"] == "assistant_message" and not f["is_final"] for f in deltas)
    assert all(f["content"] == f["token"] and f["message_id"] == "m-1" for f in deltas)
    assert "".join(f["content"] for f in deltas) == "Hello there, how can I help?"
    assert final == {
        "type": "assistant_message",
        "message_id": "m-1",
        "content": "",
        "token": "",
        "is_final": True,
        "stop_reason": "completed",
        "seq": len(step.frames),
        "usage": {"prompt_tokens": final["usage"]["prompt_tokens"], "completion_tokens": 9, "context_window": 8192,
                  "counted_by": "estimate"},
    }  # fmt: skip
    assert 0 < final["usage"]["prompt_tokens"] < 8192
    assert step.done == {"status": "completed", "pending_call_ids": []}
    sent = agent_runtime.upstream.requests[0]
    assert sent["model"] == "fake-model"
    assert sent["messages"][0]["role"] == "system"
    assert sent["messages"][1:] == [{"role": "user", "content": "hi"}]


async def test_tokens_that_arrive_faster_than_the_log_writes_are_joined_into_fewer_frames(
    agent_runtime: RunningAgentRuntime,
) -> None:
    text = " ".join(f"w{i}" for i in range(200))
    agent_runtime.upstream.reply_text(text)

    step = await agent_runtime.send("s-burst", user("go", "m-1"))

    deltas = step.frames[1:-1]
    assert [f["seq"] for f in step.frames] == list(range(1, len(step.frames) + 1))
    assert "".join(f["content"] for f in deltas) == text
    assert all(f["content"] == f["token"] for f in deltas)
    assert len(deltas) < 50, f"{len(deltas)} frames for a burst of 200 tokens"
    assert step.frames[-1]["is_final"] is True


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
    assert (write["requires_approval"], read["requires_approval"]) == (True, False)

    rejecting = {"type": "approval", "call_id": write["call_id"], "decision": "reject", "feedback": "use b.txt"}
    recorded = await agent_runtime.send("s-reject", rejecting)
    assert [f["type"] for f in recorded.frames] == ["approval_recorded"]
    assert recorded.frames[0]["decision"] == "reject" and recorded.frames[0]["feedback"] == "use b.txt"
    last = await agent_runtime.send(
        "s-reject",
        {"type": "tool_result", "call_id": read["call_id"], "error": "Ошибка выполнения [file_not_found]: gone.py"},
    )

    assert last.text == "Understood, I left a.txt alone."
    tool_messages = {m["tool_call_id"]: m["content"] for m in upstream.requests[1]["messages"] if m["role"] == "tool"}
    rejection = orjson.loads(tool_messages[write["call_id"]])
    assert rejection["rejected_by_user"] is True and rejection["user_feedback"] == "use b.txt"
    assert (
        rejection["error"].endswith("The user says: use b.txt") and "Do not make this call again" in rejection["note"]
    )
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
    error = orjson.loads(tool["content"])["error"]
    assert error.startswith("read_file: missing required argument 'path'") and "its arguments: path," in error


async def test_arguments_of_the_wrong_type_go_back_to_the_model_and_undeclared_keys_never_reach_the_client(
    agent_runtime: RunningAgentRuntime,
) -> None:
    agent_runtime.upstream.reply_tool_calls(("read_file", {"path": ["a.py"]}))
    agent_runtime.upstream.reply_tool_calls(("read_file", {"path": "a.py", "exit_code": 0, "duration_ms": 41}))

    step = await agent_runtime.send("s-types", user("read a.py"))

    (call,) = step.tool_calls
    assert call["arguments"] == {"path": "a.py"}
    tool = agent_runtime.upstream.requests[1]["messages"][-1]
    assert orjson.loads(tool["content"])["error"].startswith("read_file: argument 'path' must be string, not array")


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
        (None, ["read_file", "write_file", "edit_file", "list_files", "search_in_project", "create_directory",
                "git_diff", "apply_patch", "run_command", "prompt_user", "update_plan"]),
        (["git.diff", "read_file", "no_such_tool"], ["read_file", "git_diff", "update_plan"]),
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


async def test_a_repeated_call_is_answered_from_the_earlier_result_and_the_tools_stay(
    agent_runtime: RunningAgentRuntime,
) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_tool_calls(("read_file", {"path": "main.py"}))
    upstream.reply_tool_calls(("read_file", {"path": "main.py"}))
    upstream.reply_tool_calls(("write_file", {"path": "main.py", "content": "print('bye')"}))

    first = await agent_runtime.send("s-repeat", user("Make main.py say bye"))
    (call,) = first.tool_calls
    result = {"type": "tool_result", "call_id": call["call_id"], "result": {"success": True, "content": "print('hi')"}}
    second = await agent_runtime.send("s-repeat", result)

    (write,) = second.tool_calls
    assert write["tool_name"] == "write_file", "the repeat did not reach the client; the work went on"
    assert len(upstream.requests) == 3
    assert "tool_choice" not in upstream.requests[2] and tool_names(upstream.requests[2])
    history = upstream.requests[2]["messages"]
    assert [m["role"] for m in history[1:]] == ["user", "assistant", "tool", "assistant", "tool"]
    repeated = history[-1]["content"]
    assert repeated.startswith('{"success":true,"content":"print(\'hi\')"}') and "already made this call" in repeated


async def test_after_two_repeats_the_model_is_asked_for_an_answer_without_tools(
    agent_runtime: RunningAgentRuntime,
) -> None:
    upstream = agent_runtime.upstream
    for _ in range(3):
        upstream.reply_tool_calls(("read_file", {"path": "main.py"}))
    upstream.reply_text("main.py prints hi.")

    first = await agent_runtime.send("s-repeats", user("What does main.py do?"))
    result = {"type": "tool_result", "call_id": first.tool_calls[0]["call_id"], "result": {"content": "print('hi')"}}
    second = await agent_runtime.send("s-repeats", result)

    assert second.text == "main.py prints hi." and second.tool_calls == []
    assert [r.get("tool_choice") for r in upstream.requests] == [None, None, None, "none"]


async def test_a_tool_call_written_as_text_is_never_shown_and_goes_back_to_the_model_once(
    agent_runtime: RunningAgentRuntime,
) -> None:
    upstream = agent_runtime.upstream
    call = '{"name": "write_file", "arguments": {"path": "a.py"}}'
    upstream.reply_text(f"I will fix it.\n<tool_call>\n{call}\n</tool_call>")
    upstream.reply_text('Done: <tool_response>{"success": true}</tool_response>')

    step = await agent_runtime.send("s-record", user("fix a.py"))

    assert step.text == "I will fix it.\n\n\nDone: ", "no record reaches the user; the next answer is a new paragraph"
    assert step.done is not None and step.done["status"] == "completed"
    correction = upstream.requests[1]["messages"][-1]
    assert correction["role"] == "user" and "no tool ran" in correction["content"]
    assert "missing required argument 'content'" in correction["content"]
    _, session = await agent_runtime.session("s-record")
    assert "<tool_" not in orjson.dumps(session["messages"]).decode()


async def test_an_answer_that_is_only_a_record_says_the_request_was_not_done(
    agent_runtime: RunningAgentRuntime,
) -> None:
    for _ in range(2):
        agent_runtime.upstream.reply_text('{"name": "run_command", "arguments": {"cmd": "pytest"}}')

    step = await agent_runtime.send("s-only-record", user("run the tests"))

    assert step.text.startswith("I could not finish this request")


@pytest.mark.parametrize("agent_runtime_overrides", [{"workspace_context": True}], indirect=True)
async def test_a_turn_starts_with_the_file_list_and_the_named_files_from_the_client(
    agent_runtime: RunningAgentRuntime,
) -> None:
    agent_runtime.upstream.reply_text("add() subtracts.")

    message = user("What is wrong with calc.py? See also docs/NOTES.md.")
    first = await agent_runtime.send("s-context", message, tools=CLIENT_TOOLS)

    calls = [(c["tool_name"], c["arguments"], c["requires_approval"]) for c in first.tool_calls]
    assert calls == [
        ("list_files", {"path": ".", "recursive": True}, False),
        ("read_file", {"path": "calc.py"}, False),
        ("read_file", {"path": "docs/NOTES.md"}, False),
    ]
    assert agent_runtime.upstream.requests == [], "the model waits for the context"
    listing = {"items": [{"path": "calc.py", "type": "file"}, {"path": "docs", "type": "directory"}]}
    answers = [
        {"result": listing},
        {"result": {"success": True, "content": "def add(a, b):\n    return a - b\n"}},
        {"error": "[file_not_found] docs/NOTES.md does not exist"},
    ]
    for call, answer in zip(first.tool_calls, answers, strict=True):
        step = await agent_runtime.send("s-context", {"type": "tool_result", "call_id": call["call_id"], **answer})

    assert step.text == "add() subtracts."
    (request,) = agent_runtime.upstream.requests
    assert request["messages"][1] == {
        "role": "user",
        "content": "Files in the project:\ncalc.py\ndocs/\n\n"
        "Contents of calc.py:\n```\ndef add(a, b):\n    return a - b\n```\n\n"
        "docs/NOTES.md does not exist (or cannot be read).\n\n"
        "My request: What is wrong with calc.py? See also docs/NOTES.md.",
    }
    assert [m["role"] for m in request["messages"]] == ["system", "user"], "context calls leave no tool messages"


@pytest.mark.parametrize("agent_runtime_overrides", [{"workspace_context": True}], indirect=True)
async def test_a_small_project_is_shown_whole_after_a_second_round_of_reads(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_text("Done.")

    first = await agent_runtime.send("s-small", user("Rename get_name to fetch_name everywhere"), tools=CLIENT_TOOLS)
    (listing_call,) = first.tool_calls
    items = [
        {"path": "util.py", "type": "file", "size": 30},
        {"path": "main.py", "type": "file", "size": 40},
        {"path": "logo.png", "type": "file", "size": 10},
        {"path": "big.py", "type": "file", "size": 9_000},
    ]
    second = await agent_runtime.send(
        "s-small", {"type": "tool_result", "call_id": listing_call["call_id"], "result": {"items": items}}
    )

    assert [c["arguments"] for c in second.tool_calls] == [{"path": "util.py"}, {"path": "main.py"}]
    contents = ["def get_name():\n    return 'x'\n", "from util import get_name\n"]
    for call, content in zip(second.tool_calls, contents, strict=True):
        step = await agent_runtime.send(
            "s-small", {"type": "tool_result", "call_id": call["call_id"], "result": {"content": content}}
        )
    assert step.text == "Done."
    prompt = agent_runtime.upstream.requests[0]["messages"][1]["content"]
    assert "Contents of util.py:\n```\ndef get_name():" in prompt and "Contents of main.py:" in prompt
    assert "big.py" in prompt.split("\n\n")[0] and "Contents of big.py" not in prompt


async def test_a_function_of_the_users_code_called_as_a_tool_in_text_is_caught(
    agent_runtime: RunningAgentRuntime,
) -> None:
    agent_runtime.upstream.reply_text('{"name": "tally_levy", "arguments": {"net": 1000}}')
    agent_runtime.upstream.reply_text("tally_levy computes the VAT.")

    step = await agent_runtime.send("s-fake-tool", user("Which function computes the VAT?"))

    assert step.text == "tally_levy computes the VAT."
    correction = agent_runtime.upstream.requests[1]["messages"][-1]["content"]
    assert "there is no tool 'tally_levy' here" in correction


async def test_an_invented_tool_name_is_answered_with_the_tool_meant(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_tool_calls(("create_file", {"path": "a.txt", "content": "hi"}))
    agent_runtime.upstream.reply_text("ok")

    await agent_runtime.send("s-invented", user("create a.txt"))

    error = orjson.loads(agent_runtime.upstream.requests[1]["messages"][-1]["content"])["error"]
    assert error.startswith("there is no tool 'create_file' here (use write_file; the tools you can call: read_file")


async def test_an_empty_answer_is_never_a_silent_end(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_text("")

    step = await agent_runtime.send("s-empty", user("hi"))

    assert step.text.startswith("The model ended this turn without an answer")


async def test_an_answer_right_after_a_failed_edit_is_sent_back_once_to_retry(
    agent_runtime: RunningAgentRuntime,
) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_tool_calls(("edit_file", {"path": "calc.py", "old_text": "a-b", "new_text": "a + b"}))
    upstream.reply_text("I fixed add().")
    upstream.reply_tool_calls(("edit_file", {"path": "calc.py", "old_text": "a - b", "new_text": "a + b"}))
    upstream.reply_text("add() now returns a + b.")

    first = await agent_runtime.send("s-retry", user("fix add in calc.py"))
    failed = {"error": "[no_match] old_text is not in calc.py; closest lines: 2:     return a - b"}
    second = await agent_runtime.send(
        "s-retry", {"type": "tool_result", "call_id": first.tool_calls[0]["call_id"], **failed}
    )

    assert second.text == "I fixed add().\n\n", "what was streamed stays streamed; what follows starts a paragraph"
    (retry,) = second.tool_calls
    assert retry["arguments"]["old_text"] == "a - b", "the model got a second chance"
    request = upstream.requests[2]["messages"][-1]
    assert request["role"] == "user" and "edit_file call failed, so nothing was changed" in request["content"]
    assert "closest lines: 2:     return a - b" in request["content"]
    third = await agent_runtime.send("s-retry", {"type": "tool_result", "call_id": retry["call_id"], "result": "ok"})
    assert third.text == "add() now returns a + b." and len(upstream.requests) == 4


async def test_after_a_rejected_edit_the_answer_stands(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_tool_calls(("write_file", {"path": "a.py", "content": "x = 1\n"}))
    upstream.reply_text("OK, I left a.py as it is.")

    first = await agent_runtime.send("s-no-retry", user("write a.py"))
    rejected = {"type": "approval", "call_id": first.tool_calls[0]["call_id"], "decision": "reject"}
    second = await agent_runtime.send("s-no-retry", rejected)

    assert second.text == "OK, I left a.py as it is." and second.tool_calls == []
    assert len(upstream.requests) == 2


@pytest.mark.parametrize(
    "agent_runtime_overrides", [{"model_tools": ["read_file", "write_file", "git.diff"]}], indirect=True
)
async def test_model_tools_narrow_what_the_model_is_offered(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_text("ok")

    await agent_runtime.send("s-narrow", user("hi"), tools=["read_file", "git.diff", "run_command"])

    request = agent_runtime.upstream.requests[0]
    assert tool_names(request) == ["read_file", "git_diff"]
    assert "write_file" not in request["messages"][0]["content"], "the prompt names only offered tools"


async def test_an_answer_that_announces_a_call_instead_of_making_it_is_sent_back(
    agent_runtime: RunningAgentRuntime,
) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_text('To create it, call write_file("settings.json", "{}").')
    upstream.reply_tool_calls(("write_file", {"path": "settings.json", "content": "{}\n"}))
    upstream.reply_text("I created settings.json.")

    first = await agent_runtime.send("s-announce", user("create settings.json"))
    (call,) = first.tool_calls
    done = await agent_runtime.send("s-announce", {"type": "tool_result", "call_id": call["call_id"], "result": "ok"})

    nudge = upstream.requests[1]["messages"][-1]
    assert nudge["role"] == "user" and nudge["content"].startswith("You said what you would do (write_file)")
    assert done.text == "I created settings.json." and len(upstream.requests) == 3, "a report after work stands"


async def test_an_answer_sent_back_that_comes_back_word_for_word_is_shown_once(
    agent_runtime: RunningAgentRuntime,
) -> None:
    upstream = agent_runtime.upstream
    said = "I ran the tests and corrected the call to run_command to run pytest again."
    upstream.reply_text(said, chunk_size=4)
    upstream.reply_text(said, chunk_size=4)
    upstream.reply_text("not asked for")

    step = await agent_runtime.send("s-echo", user("run the tests"))

    assert step.text.strip() == said, "the repeat is not shown a second time"
    assert len(upstream.requests) == 2, "no third call: the model has nothing else to say"
    session = await agent_runtime.wait_until_idle("s-echo")
    assert [m["role"] for m in session["messages"][-2:]] == ["user", "assistant"]
    assert session["messages"][-1]["content"] == said
    upstream.replies.clear()


async def test_a_reply_that_starts_like_the_one_sent_back_and_goes_on_is_shown_whole(
    agent_runtime: RunningAgentRuntime,
) -> None:
    upstream = agent_runtime.upstream
    said = "I ran the tests and corrected the call to run_command."
    upstream.reply_text(said, chunk_size=4)
    upstream.reply_text(said[:20] + " nothing: I cannot run commands here.", chunk_size=4)

    step = await agent_runtime.send("s-echo-2", user("run the tests"))

    assert step.text == said + "\n\n" + said[:20] + " nothing: I cannot run commands here."


async def test_a_plain_answer_that_names_no_step_is_not_sent_back(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_text("Let me explain: main.py prints the sum of two numbers.")

    step = await agent_runtime.send("s-plain-answer", user("what does main.py do?"))

    assert step.text.startswith("Let me explain") and len(agent_runtime.upstream.requests) == 1


@pytest.mark.parametrize("agent_runtime_overrides", [{"workspace_context": True}], indirect=True)
async def test_a_client_that_names_no_tools_gets_no_context_calls(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_text("Hello!")

    step = await agent_runtime.send("s-bare", user("What is wrong with calc.py?"))

    assert step.tool_calls == [] and step.text == "Hello!", "the seed's bare example never waits on a tool timeout"


async def test_model_on_a_user_message_picks_the_model_for_that_turn_only(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    upstream.reply_tool_calls(("read_file", {"path": "a.py"}))
    upstream.reply_text("Read it.")
    upstream.reply_text("Default again.")
    message = {"type": "user_message", "content": "read a.py", "model": "fake-json-model"}
    [call] = (await agent_runtime.send("s-model", message)).tool_calls
    await agent_runtime.send("s-model", {"type": "tool_result", "call_id": call["call_id"], "result": {}})
    await agent_runtime.send("s-model", user("hi"))

    # fake-json-model presents the tools in the system message (no `tools` field): both of its calls went through it
    assert ["tools" in request for request in upstream.requests] == [False, False, True]


async def test_an_unknown_model_ends_the_turn_with_an_error_that_names_it(agent_runtime: RunningAgentRuntime) -> None:
    step = await agent_runtime.send("s-nomodel", {"type": "user_message", "content": "hi", "model": "no-such-model"})
    [error] = step.errors
    assert error["code"] == "LLM_ERROR" and "no-such-model" in error["content"]
    assert step.frames[-1]["stop_reason"] == "error"
    status, body = await agent_runtime.input("s-nomodel", {"type": "user_message", "content": "hi", "model": "a b"})
    assert (status, body["error"]["code"]) == (400, "INVALID_FORMAT")
