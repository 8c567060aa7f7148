"""The JSON-text tool-call parser (Qwen2.5-Coder) and its use on whole answers and on streams of chunks."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from codelab_llm_proxy.api.chat_completions.protocol import ChatCompletionRequest
from codelab_llm_proxy.services.tool_parsers import (
    StreamingToolCallExtractor,
    extract_into_completion,
    get_tool_parser,
)

PARSER = get_tool_parser("json")
READ_SCHEMA = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "end_line": {"type": "integer"}},
    "required": ["path"],
}
OFFERED: dict[str, dict[str, Any]] = {"read_file": READ_SCHEMA, "list_files": {"type": "object", "properties": {}}}


def calls(text: str, offered: dict[str, dict[str, Any]] = OFFERED) -> list[tuple[str, dict[str, Any]]] | None:
    found = PARSER.extract(text, offered)
    return None if found is None else [(c.name, orjson.loads(c.arguments)) for c in found.calls]


def prose(text: str) -> str | None:
    found = PARSER.extract(text, OFFERED)
    return None if found is None else text[: found.text_end]


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "read_file", "arguments": {"path": "main.py"}}',
        '  \n{"name": "read_file", "arguments": {"path": "main.py"}}\n',
        '```json\n{"name": "read_file", "arguments": {"path": "main.py"}}\n```',
        '```\n{"name": "read_file", "arguments": {"path": "main.py"}}\n```\n',
        '```json\n{"name": "read_file", "arguments": {"path": "main.py"}}',
        '{"name": "read_file", "parameters": {"path": "main.py"}}',
        '{"name": "read_file", "arguments": "{\\"path\\": \\"main.py\\"}"}',
        '{"type": "function", "function": {"name": "read_file", "arguments": {"path": "main.py"}}}',
        '<tool_call>\n{"name": "read_file", "arguments": {"path": "main.py"}}\n</tool_call>',
    ],
)
def test_one_call_in_every_shape_the_model_writes(text: str) -> None:
    assert calls(text) == [("read_file", {"path": "main.py"})]


def test_a_list_and_a_sequence_of_calls_become_several_calls() -> None:
    listed = '[{"name": "read_file", "arguments": {"path": "a.py"}}, {"name": "list_files", "arguments": {}}]'
    assert calls(listed) == [("read_file", {"path": "a.py"}), ("list_files", {})]
    sequence = '{"name": "read_file", "arguments": {"path": "a.py"}}\n{"name": "read_file", "arguments": {"path": "b"}}'
    assert calls(sequence) == [("read_file", {"path": "a.py"}), ("read_file", {"path": "b"})]
    tagged = '<tool_call>\n{"name": "list_files", "arguments": {}}\n</tool_call>\n<tool_call>{"name": "list_files", '
    assert calls(tagged + '"arguments": {}}</tool_call>') == [("list_files", {}), ("list_files", {})]


def test_prose_then_a_fenced_call_is_a_call_and_the_prose_stays_text() -> None:
    text = 'I will read it first.\n```json\n{"name": "read_file", "arguments": {"path": "main.py"}}\n```\nThen...'
    assert calls(text) == [("read_file", {"path": "main.py"})]
    assert prose(text) == "I will read it first.\n"


def test_what_the_model_writes_after_its_calls_is_dropped() -> None:
    call = '<tool_call>\n{"name": "read_file", "arguments": {"path": "a.py"}}\n</tool_call>'
    invented = call + '\n<tool_response>\n{"x": 1}'
    assert calls(invented) == [("read_file", {"path": "a.py"})]
    assert prose(invented) == ""


def test_a_call_whose_arguments_do_not_fit_the_schema_is_no_call() -> None:
    assert calls('{"name": "read_file", "arguments": {"end_line": 3}}') is None, "path is required"
    assert calls('{"name": "read_file", "arguments": {"path": 7}}') is None, "path must be a string"
    assert calls('{"name": "read_file", "arguments": {"path": "a", "end_line": "x"}}') is None
    assert calls('{"name": "read_file", "arguments": {"path": "a", "extra": 1}}') == [
        ("read_file", {"path": "a", "extra": 1})
    ], "undeclared keys are the caller's to drop"


def test_arguments_keep_markdown_fences_inside_strings() -> None:
    text = '```json\n{"name": "read_file", "arguments": {"path": "```x```"}}\n```'
    assert calls(text) == [("read_file", {"path": "```x```"})]


@pytest.mark.parametrize(
    "text",
    [
        '{"name": "delete_everything", "arguments": {}}',  # a tool nobody offered
        '{"name": "Alice", "age": 31}',  # ordinary JSON
        '{"path": "main.py"}',
        '{"name": "read_file", "arguments": {"path": "main.py"',  # cut off
        '[{"name": "read_file", "arguments": {}}, {"name": "nope", "arguments": {}}]',  # one bad call spoils all
        "[]",
        '{"name": "read_file", "arguments": [1, 2]}',
        '{"name": "read_file", "arguments": "not json"}',
        '```python\n{"name": "read_file", "arguments": {}}\n```',
        "The answer is 42.",
        "",
    ],
)
def test_anything_else_stays_text(text: str) -> None:
    assert calls(text) is None


def test_a_python_call_in_prose_is_a_call_and_the_prose_before_it_stays_text() -> None:
    text = 'To read it, call `read_file("main.py", end_line=3)`. It shows the file.'

    assert calls(text) == [("read_file", {"path": "main.py", "end_line": 3})]
    assert prose(text) == "To read it, call "
    assert calls('read_file("a.py")\nread_file(path="b.py")') == [
        ("read_file", {"path": "a.py"}),
        ("read_file", {"path": "b.py"}),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Use read_file(path) to read it.",  # a name, not a value
        'Use read_file("a.py", 3, 4) here.',  # more positional arguments than parameters
        'Use read_file(end_line="3") here.',  # fails the schema
        'Use my.read_file("a.py") here.',  # a method of something else
        'Use reread_file("a.py") here.',  # another name
        'read_file("a.py", __import__("os").system("id"))',  # not a literal: never run, never a call
    ],
)
def test_python_calls_that_are_not_literal_calls_to_an_offered_tool_stay_text(text: str) -> None:
    assert calls(text) is None


def test_a_call_written_with_python_literals_is_read_as_one() -> None:
    assert calls('{"name": "read_file", "arguments": {"path": "a.py", "end_line": None}}') is None, "end_line: int"
    assert calls("I'll look: {'name': 'read_file', 'arguments': {'path': 'it\\'s.py'}}") == [
        ("read_file", {"path": "it's.py"})
    ]
    assert calls('{"name": "list_files", "arguments": {"recursive": True}}') == [("list_files", {"recursive": True})]
    assert calls("{'name': 'read_file', 'arguments': {'path': __import__('os').getcwd()}}") is None, "never run"


def test_no_offered_tools_means_no_calls() -> None:
    assert calls('{"name": "read_file", "arguments": {"path": "a"}}', {}) is None


@pytest.mark.parametrize(
    ("text", "released"),
    [
        ("", ""),
        ("{", ""),
        ('{"na', ""),
        ("[", ""),
        ('[ {"', ""),
        ("`", ""),
        ("```", ""),
        ("```js", ""),
        ("```json\n", ""),
        ('```json\n{"', ""),
        ("```python\nx = 1", "```python\nx = 1"),
        ('```python\nd = {"a": 1}\n``` and {"', '```python\nd = {"a": 1}\n``` and '),
        ("```py", "```py"),
        ("```json\nprint(1)", "```json\nprint(1)"),
        ("<tool", ""),
        ('<tool_call>\n{"', ""),
        ("Hello", "Hello"),
        ("I will read it.\n```json\n{", "I will read it.\n"),
        ("Done. <tool_response>", "Done. "),
        ("[link](http://x) <b>", "[link](http://x) <b>"),
        ("{x for x in y}", "{x for x in y}"),
        ('Then call read_file("a', "Then call "),
        ("Then call read_fi", "Then call "),
        ("Then call reader", "Then call reader"),
    ],
)
def test_stream_holds_text_only_from_where_a_call_could_start(text: str, released: str) -> None:
    scanner = PARSER.scanner(OFFERED)
    assert text[: scanner.release_point(text)] == released


def completion(content: str | None, finish: str = "stop", **message: Any) -> dict[str, Any]:
    return {
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content, **message}, "finish_reason": finish}
        ],
    }


def test_whole_answer_becomes_an_openai_tool_call() -> None:
    answer = completion('```json\n{"name": "read_file", "arguments": {"path": "main.py"}}\n```')
    extract_into_completion(answer, PARSER, OFFERED)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    (call,) = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and len(call["id"]) > 10
    assert call["type"] == "function"
    assert call["function"]["name"] == "read_file"
    assert orjson.loads(call["function"]["arguments"]) == {"path": "main.py"}


def test_prose_before_a_call_stays_the_content_of_a_whole_answer() -> None:
    answer = completion('Let me look.\n<tool_call>\n{"name": "read_file", "arguments": {"path": "a"}}\n</tool_call>')
    extract_into_completion(answer, PARSER, OFFERED)
    message = answer["choices"][0]["message"]
    assert message["content"] == "Let me look." and message["tool_calls"][0]["function"]["name"] == "read_file"


def test_answer_cut_off_at_max_tokens_stays_text_even_if_it_parses() -> None:
    answer = completion('{"name": "list_files", "arguments": {}}', finish="length")
    extract_into_completion(answer, PARSER, OFFERED)
    assert answer["choices"][0]["message"]["content"] == '{"name": "list_files", "arguments": {}}'
    assert "tool_calls" not in answer["choices"][0]["message"]


def test_native_tool_calls_are_left_alone() -> None:
    native = [{"id": "call_x", "type": "function", "function": {"name": "read_file", "arguments": "{}"}}]
    answer = completion('{"name": "list_files", "arguments": {}}', finish="tool_calls", tool_calls=native)
    extract_into_completion(answer, PARSER, OFFERED)
    assert answer["choices"][0]["message"]["tool_calls"] == native


# --- streaming -------------------------------------------------------------------------------------------------


def chunks_for(text: str, size: int = 3, finish: str = "stop") -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    for start in range(0, len(text), size):
        piece = text[start : start + size]
        out.append({**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return out


def run_stream(text: str, **options: Any) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    """Per upstream chunk, the chunks the extractor sends; and all sent chunks flattened."""
    extractor = StreamingToolCallExtractor(PARSER, OFFERED)
    per_input = [extractor.process(orjson.loads(orjson.dumps(c))) for c in chunks_for(text, **options)]
    return per_input, [c for out in per_input for c in out]


def sent_text(sent: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in sent if c["choices"])


def test_plain_text_streams_through_at_once() -> None:
    per_input, sent = run_stream("Hello, world! How are you?")
    assert all(len(out) == 1 for out in per_input), "no chunk is held back or merged"
    assert sent_text(sent) == "Hello, world! How are you?"
    assert sent[-1]["choices"][0]["finish_reason"] == "stop"


def test_code_fence_of_another_language_is_released_once_its_language_is_known() -> None:
    per_input, sent = run_stream("```python\nprint('hi')\n```", size=2)
    assert per_input[1] == [], "'``' is held: it could open a json fence"
    assert sent_text(per_input[2]) == "```p", "'```p' cannot be a json fence: released at once"
    assert sent_text(sent) == "```python\nprint('hi')\n```"


def test_streamed_bare_json_becomes_tool_call_deltas() -> None:
    text = ' ```json\n{"name": "read_file", "arguments": {"path": "main.py"}}\n```'
    _, sent = run_stream(text)
    assert sent_text(sent) == ""
    deltas = [c["choices"][0]["delta"] for c in sent]
    tool_deltas = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    head = tool_deltas[0]
    assert head["index"] == 0 and head["id"].startswith("call_") and head["type"] == "function"
    assert head["function"]["name"] == "read_file"
    arguments = "".join(d["function"]["arguments"] for d in tool_deltas)
    assert orjson.loads(arguments) == {"path": "main.py"}
    assert sent[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert sent[0]["choices"][0]["delta"]["role"] == "assistant"


def test_a_streamed_python_call_never_shows_as_text_and_becomes_a_call() -> None:
    _, sent = run_stream('Sure. Call read_file("main.py") and see.', size=2)

    assert sent_text(sent) == "Sure. Call ", "not even the start of the tool's name reached the client as text"
    (head,) = [c["choices"][0]["delta"]["tool_calls"][0] for c in sent if "tool_calls" in c["choices"][0]["delta"]][:1]
    assert head["function"]["name"] == "read_file"
    assert sent[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_two_streamed_calls_get_their_own_indexes_and_ids() -> None:
    text = '[{"name": "read_file", "arguments": {"path": "a"}}, {"name": "list_files", "arguments": {}}]'
    _, sent = run_stream(text)
    heads = [c["choices"][0]["delta"]["tool_calls"][0] for c in sent if "tool_calls" in c["choices"][0]["delta"]]
    heads = [h for h in heads if "id" in h]
    assert [(h["index"], h["function"]["name"]) for h in heads] == [(0, "read_file"), (1, "list_files")]
    assert heads[0]["id"] != heads[1]["id"]


@pytest.mark.parametrize(
    ("text", "finish"),
    [
        ('{"name": "Alice", "age": 31}', "stop"),
        ('{"name": "read_file", "arguments": {"path": "main.py"}}', "length"),
        ('{"name": "read_file", "arguments": {"pa', "length"),
        ('{"name": "read_file", "arguments": {}} and then prose', "stop"),
        ('Here is a dict: {"name": "Bob"} and more', "stop"),
    ],
)
def test_held_json_that_is_no_call_comes_out_as_the_same_text(text: str, finish: str) -> None:
    _, sent = run_stream(text, finish=finish)
    assert sent_text(sent) == text
    assert sent[-1]["choices"][0]["finish_reason"] == finish
    assert not any("tool_calls" in c["choices"][0]["delta"] for c in sent)


def test_native_streamed_tool_calls_pass_untouched() -> None:
    extractor = StreamingToolCallExtractor(PARSER, OFFERED)
    delta = {"tool_calls": [{"index": 0, "id": "call_n", "type": "function", "function": {"name": "x"}}]}
    chunk = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
    assert extractor.process(orjson.loads(orjson.dumps(chunk))) == [chunk]


def test_streamed_prose_goes_out_at_once_and_the_fenced_call_after_it_becomes_a_call() -> None:
    text = 'I will read it.\n```json\n{"name": "read_file", "arguments": {"path": "a.py"}}\n```\nDone!'
    per_input, sent = run_stream(text)
    assert sent_text([c for out in per_input[:7] for c in out]) == "I will read it.\n", "prose is not held"
    assert sent_text(sent) == "I will read it.\n", "text after the call is dropped"
    heads = [c["choices"][0]["delta"]["tool_calls"][0] for c in sent if "tool_calls" in c["choices"][0]["delta"]]
    assert heads[0]["function"]["name"] == "read_file"
    assert sent[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_a_tool_result_the_model_writes_itself_is_held_and_sent_whole_at_the_end() -> None:
    text = 'The file says:\n<tool_response>\n{"content": "x = 1"}\n</tool_response>'
    per_input, sent = run_stream(text)
    pieces = [sent_text(out) for out in per_input if sent_text(out)]
    assert pieces[-1] == '<tool_response>\n{"content": "x = 1"}\n</tool_response>'
    assert sent_text(sent) == text


def test_usage_chunk_passes_and_dropped_stream_flushes_held_text() -> None:
    extractor = StreamingToolCallExtractor(PARSER, OFFERED)
    assert extractor.process({"id": "c", "choices": [], "usage": {"total_tokens": 3}}) == [
        {"id": "c", "choices": [], "usage": {"total_tokens": 3}}
    ]
    held = {"id": "c", "choices": [{"index": 0, "delta": {"content": '{"name": "re'}, "finish_reason": None}]}
    assert extractor.process(held) == []
    (flushed,) = extractor.flush({"id": "c"})
    assert flushed["choices"][0]["delta"]["content"] == '{"name": "re'


def test_usage_on_a_finish_chunk_that_becomes_several_chunks_is_sent_once() -> None:
    extractor = StreamingToolCallExtractor(PARSER, OFFERED)
    held = {"id": "c", "choices": [{"index": 0, "delta": {"content": '{"name": "list_files", "arguments": {}}'}}]}
    held["choices"][0]["finish_reason"] = None
    assert extractor.process(held) == []
    finish = {"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"total_tokens": 9}}
    sent = extractor.process(finish)
    assert len(sent) >= 3
    assert [c.get("usage") for c in sent] == [None] * (len(sent) - 1) + [{"total_tokens": 9}]


def test_forced_tool_choice_limits_the_calls_to_that_tool() -> None:
    tools = [{"type": "function", "function": {"name": n, "parameters": s}} for n, s in OFFERED.items()]
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": tools}
    assert ChatCompletionRequest.model_validate(body).offered_tool_names() == OFFERED
    forced = {**body, "tool_choice": {"type": "function", "function": {"name": "list_files"}}}
    assert ChatCompletionRequest.model_validate(forced).offered_tool_names() == {"list_files": OFFERED["list_files"]}
    assert ChatCompletionRequest.model_validate({**body, "tool_choice": "none"}).offered_tool_names() == {}


def test_flush_after_calls_sends_nothing_more() -> None:
    extractor = StreamingToolCallExtractor(PARSER, OFFERED)
    for chunk in chunks_for('{"name": "list_files", "arguments": {}}'):
        extractor.process(chunk)
    assert extractor.flush({"id": "c"}) == []
