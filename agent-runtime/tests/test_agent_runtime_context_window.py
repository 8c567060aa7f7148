"""The history sent to the model always fits its window: a 50-turn session with large tool outputs against a model
whose server refuses over-long prompts the way llama.cpp does, and nothing is ever refused or lost."""

from __future__ import annotations

from typing import Any

import pytest

from codelab_agent_runtime.turns.context_window import SUMMARY_PROMPT
from codelab_common.testing import FakeOpenAI
from codelab_common.testing.fake_openai import ScriptedReply, prompt_size
from tests.fixtures.agent_runtime import RunningAgentRuntime
from tests.fixtures.llm_proxy import NO_RETRY

WINDOW = 4096


@pytest.fixture
def llm_proxy_models(fake_upstream: FakeOpenAI) -> list[dict[str, object]]:
    return [
        {
            "name": "fake-small",
            "provider": "openai-compatible",
            "upstream_model": "fake-model",
            "base_url": fake_upstream.base_url,
            "context_window": WINDOW,
            "retry": NO_RETRY,
        },
        {
            "name": "fake-counted",
            "provider": "openai-compatible",
            "upstream_model": "fake-model",
            "base_url": fake_upstream.base_url,
            "context_window": WINDOW,
            "retry": NO_RETRY,
            "tokenizer": "llama.cpp",
        },
    ]


def summaries(body: dict[str, Any]) -> ScriptedReply | None:
    if body["messages"][0]["content"] == SUMMARY_PROMPT:
        return ScriptedReply(text="Summary: the user had files read one by one; each was long.")
    return None


@pytest.mark.parametrize("agent_runtime_overrides", [{"model": "fake-small"}], indirect=True)
async def test_fifty_turns_with_large_tool_outputs_never_overflow_the_window(
    agent_runtime: RunningAgentRuntime,
) -> None:
    upstream = agent_runtime.upstream
    upstream.context_tokens = WINDOW
    upstream.responder = summaries
    finals = []
    for turn in range(50):
        upstream.reply_tool_calls(("read_file", {"path": f"big{turn}.txt"}))
        upstream.reply_text(f"big{turn}.txt holds line after line.")
        first = await agent_runtime.send(
            "s-long", {"type": "user_message", "content": f"Read big{turn}.txt"}, ["read_file"]
        )
        [call] = first.tool_calls
        content = "".join(f"{turn}: line {n} of a long file\n" for n in range(120))
        result = {"type": "tool_result", "call_id": call["call_id"], "result": {"content": content}}
        done = await agent_runtime.send("s-long", result, ["read_file"])
        assert done.text == f"big{turn}.txt holds line after line.", f"turn {turn}: {done.errors}"
        finals.append(done.frames[-1])

    assert upstream.refused_for_length == 0
    assert max(prompt_size(request) for request in upstream.requests) // 4 < WINDOW
    assert all(f["usage"]["context_window"] == WINDOW and f["usage"]["counted_by"] == "estimate" for f in finals)
    assert all(f["usage"]["prompt_tokens"] + 1024 <= WINDOW for f in finals)
    summarised = [r for r in upstream.requests if r["messages"][0]["content"] == SUMMARY_PROMPT]
    assert summarised, "the earlier turns were summarised with the model"
    last = upstream.requests[-1]["messages"]
    assert "Summary: the user had files read" in last[0]["content"]
    assert "- Read big30.txt" in last[0]["content"], "the user's requests are kept word for word"
    assert "earlier requests)" in last[0]["content"], "only the latest 40, so the summary does not grow without end"
    assert len(last[0]["content"]) < 6000
    assert any("left out to fit the context window; call read_file again" in (m["content"] or "") for m in last)
    status, session = await agent_runtime.session("s-long")
    assert status == 200 and len(session["messages"]) == 50 * 4, "the session keeps every message"


@pytest.mark.parametrize("agent_runtime_overrides", [{"model": "fake-small"}], indirect=True)
async def test_a_turn_whose_own_tool_output_is_too_big_is_cut_not_refused(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    upstream.context_tokens = WINDOW
    upstream.reply_tool_calls(("read_file", {"path": "huge.log"}))
    upstream.reply_text("The log is huge.")
    first = await agent_runtime.send("s-huge", {"type": "user_message", "content": "Read huge.log"}, ["read_file"])
    [call] = first.tool_calls
    huge = {"content": "x" * 11_000}
    done = await agent_runtime.send(
        "s-huge", {"type": "tool_result", "call_id": call["call_id"], "result": huge}, ["read_file"]
    )
    assert done.text == "The log is huge." and upstream.refused_for_length == 0


@pytest.mark.parametrize("agent_runtime_overrides", [{"model": "fake-counted"}], indirect=True)
async def test_a_model_with_a_tokenizer_is_counted_exactly_and_its_window_used_whole(
    agent_runtime: RunningAgentRuntime,
) -> None:
    """8,000 characters are over the budget by the estimate (÷ 3) but not by the tokenizer (÷ 4): nothing is cut."""
    upstream = agent_runtime.upstream
    upstream.context_tokens = WINDOW
    upstream.reply_tool_calls(("read_file", {"path": "mid.txt"}))
    upstream.reply_text("Read it.")
    first = await agent_runtime.send("s-counted", {"type": "user_message", "content": "Read mid.txt"}, ["read_file"])
    [call] = first.tool_calls
    result = {"type": "tool_result", "call_id": call["call_id"], "result": {"content": "word " * 1600}}
    done = await agent_runtime.send("s-counted", result, ["read_file"])

    assert done.text == "Read it." and upstream.tokenized >= 1
    usage = done.frames[-1]["usage"]
    assert usage["counted_by"] == "tokenizer" and usage["prompt_tokens"] + 1024 <= WINDOW
    told = upstream.requests[-1]["messages"][-1]["content"]
    assert "left out to fit" not in told and len(told) > 8000


@pytest.mark.parametrize("agent_runtime_overrides", [{"model": "fake-small"}], indirect=True)
async def test_a_model_without_a_tokenizer_is_estimated_and_never_refused(agent_runtime: RunningAgentRuntime) -> None:
    upstream = agent_runtime.upstream
    for turn in range(3):
        upstream.reply_text("ok")
        await agent_runtime.send("s-est", {"type": "user_message", "content": f"{turn} " + "x" * 12_000})
    assert upstream.tokenized == 0 and upstream.refused_for_length == 0
