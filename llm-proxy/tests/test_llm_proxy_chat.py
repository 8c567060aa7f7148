"""`POST /v1/chat/completions` through the real proxy to the scripted upstream: text, options, tool calls."""

from __future__ import annotations

from typing import Any

import orjson

from tests.fixtures.llm_proxy import RunningLLMProxy

USER = [{"role": "user", "content": "hello"}]
READ_FILE = {
    "type": "function",
    "function": {
        "name": "read_file",
        "description": "Read a file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
}


def text_of(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events if isinstance(e, dict) and e.get("choices")
    )


def tool_calls_of(events: list[Any]) -> list[dict[str, Any]]:
    """Streamed tool-call deltas assembled the way OpenAI clients do it (by index)."""
    calls: dict[int, dict[str, Any]] = {}
    for event in events:
        if not isinstance(event, dict) or not event.get("choices"):
            continue
        for delta in event["choices"][0]["delta"].get("tool_calls") or ():
            call = calls.setdefault(delta["index"], {"id": None, "name": "", "arguments": ""})
            call["id"] = delta.get("id") or call["id"]
            function = delta.get("function") or {}
            call["name"] += function.get("name") or ""
            call["arguments"] += function.get("arguments") or ""
    return [calls[i] for i in sorted(calls)]


def finish_reason(events: list[Any]) -> str | None:
    reasons = [e["choices"][0]["finish_reason"] for e in events if isinstance(e, dict) and e.get("choices")]
    return [r for r in reasons if r][-1]


async def test_non_stream_answer_comes_back_with_public_model_name(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_text("Hi there!")
    status, answer = await llm_proxy.chat({"model": "fake-model", "messages": USER, "temperature": 0.2})
    assert status == 200
    assert answer["object"] == "chat.completion"
    assert answer["model"] == "fake-model"
    assert answer["choices"][0]["message"]["content"] == "Hi there!"
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["total_tokens"] == 15


async def test_stream_relays_every_token_and_ends_with_done(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_text("The quick brown fox jumps")
    status, events = await llm_proxy.stream({"model": "fake-model", "messages": USER})
    assert status == 200
    assert events[-1] == "[DONE]"
    assert text_of(events) == "The quick brown fox jumps"
    chunks = events[:-1]
    assert all(c["model"] == "fake-model" and c["object"] == "chat.completion.chunk" for c in chunks)
    assert len(chunks) >= 8, "tokens are relayed one by one, not buffered"
    assert finish_reason(events) == "stop"


async def test_options_and_unknown_keys_reach_the_upstream_unchanged(llm_proxy: RunningLLMProxy) -> None:
    history = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "read a.py"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "print(1)"},
    ]
    body = {
        "model": "fake-model",
        "messages": history,
        "tools": [READ_FILE],
        "tool_choice": "auto",
        "temperature": 0,
        "max_completion_tokens": 33,
        "max_tokens": 32,
        "stop": ["\n\n"],
        "seed": 7,
        "response_format": {"type": "text"},
    }
    llm_proxy.upstream.reply_text("It prints 1.")
    status, answer = await llm_proxy.chat(body)
    assert status == 200 and answer["choices"][0]["message"]["content"] == "It prints 1."
    assert llm_proxy.upstream.requests[-1] == body


async def test_stream_usage_is_relayed_when_asked(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_text("ok")
    status, events = await llm_proxy.stream(
        {"model": "fake-model", "messages": USER, "stream_options": {"include_usage": True}}
    )
    assert status == 200
    usage = [e for e in events[:-1] if e.get("usage")]
    assert usage and usage[-1]["usage"]["total_tokens"] == 15 and usage[-1]["choices"] == []
    assert llm_proxy.upstream.requests[-1]["stream_options"] == {"include_usage": True}


async def test_native_tool_calls_pass_through_non_stream(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_tool_calls(("read_file", {"path": "main.py"}))
    status, answer = await llm_proxy.chat({"model": "fake-model", "messages": USER, "tools": [READ_FILE]})
    assert status == 200
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "call_1", "native ids are kept"
    assert call["function"] == {"name": "read_file", "arguments": '{"path":"main.py"}'}


async def test_native_tool_calls_pass_through_stream(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_tool_calls(("read_file", {"path": "main.py"}), ("read_file", {"path": "b.py"}))
    status, events = await llm_proxy.stream({"model": "fake-model", "messages": USER, "tools": [READ_FILE]})
    assert status == 200 and events[-1] == "[DONE]"
    calls = tool_calls_of(events)
    assert [(c["id"], c["name"], orjson.loads(c["arguments"])) for c in calls] == [
        ("call_1", "read_file", {"path": "main.py"}),
        ("call_2", "read_file", {"path": "b.py"}),
    ]
    assert finish_reason(events) == "tool_calls"


BARE_CALL = '```json\n{"name": "read_file", "arguments": {"path": "main.py"}}\n```'


async def test_bare_json_answer_becomes_a_tool_call_non_stream(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_text(BARE_CALL)
    status, answer = await llm_proxy.chat({"model": "fake-json-model", "messages": USER, "tools": [READ_FILE]})
    assert status == 200
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "read_file"
    assert orjson.loads(call["function"]["arguments"]) == {"path": "main.py"}


async def test_bare_json_answer_becomes_tool_call_deltas_stream(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_text(BARE_CALL)
    status, events = await llm_proxy.stream({"model": "fake-json-model", "messages": USER, "tools": [READ_FILE]})
    assert status == 200 and events[-1] == "[DONE]"
    assert text_of(events) == ""
    (call,) = tool_calls_of(events)
    assert call["id"].startswith("call_") and call["name"] == "read_file"
    assert orjson.loads(call["arguments"]) == {"path": "main.py"}
    assert finish_reason(events) == "tool_calls"


async def test_bare_json_stays_text_without_offered_tools(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_text(BARE_CALL)
    status, events = await llm_proxy.stream({"model": "fake-json-model", "messages": USER})
    assert status == 200 and text_of(events) == BARE_CALL and finish_reason(events) == "stop"
    llm_proxy.upstream.reply_text(BARE_CALL)
    _, answer = await llm_proxy.chat(
        {"model": "fake-json-model", "messages": USER, "tools": [READ_FILE], "tool_choice": "none"}
    )
    assert answer["choices"][0]["message"]["content"] == BARE_CALL


async def test_json_naming_a_tool_not_offered_stays_text(llm_proxy: RunningLLMProxy) -> None:
    text = '{"name": "run_command", "arguments": {"command": "rm -rf /"}}'
    llm_proxy.upstream.reply_text(text)
    status, events = await llm_proxy.stream({"model": "fake-json-model", "messages": USER, "tools": [READ_FILE]})
    assert status == 200 and text_of(events) == text and not tool_calls_of(events)
    assert finish_reason(events) == "stop"


async def test_prose_streams_unbuffered_even_when_tools_are_offered(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_text("Let me explain how main.py works in detail.")
    status, events = await llm_proxy.stream({"model": "fake-json-model", "messages": USER, "tools": [READ_FILE]})
    assert status == 200
    content_chunks = [e for e in events[:-1] if e["choices"] and e["choices"][0]["delta"].get("content")]
    assert len(content_chunks) >= 10
    assert text_of(events) == "Let me explain how main.py works in detail."


async def test_the_json_model_gets_tools_as_a_listing_not_as_native_tools(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_text("ok")
    messages = [{"role": "system", "content": "be brief"}, *USER]
    await llm_proxy.chat({"model": "fake-json-model", "messages": messages, "tools": [READ_FILE]})
    sent = llm_proxy.upstream.requests[-1]
    assert "tools" not in sent and "grammar" not in sent
    assert sent["messages"][0]["content"].startswith("be brief\nTools:\n- read_file(path)")
    assert sent["messages"][1:] == USER


async def test_a_plain_model_gets_native_tools_unchanged(llm_proxy: RunningLLMProxy) -> None:
    llm_proxy.upstream.reply_text("ok")
    await llm_proxy.chat({"model": "fake-model", "messages": USER, "tools": [READ_FILE], "tool_choice": "auto"})
    sent = llm_proxy.upstream.requests[-1]
    assert sent["tools"] == [READ_FILE] and sent["tool_choice"] == "auto" and sent["messages"] == USER
