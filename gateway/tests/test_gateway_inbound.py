"""Parsing of client frames: every malformed frame gets a message that says what to fix."""

from pathlib import Path

import orjson
import pytest

from codelab_common.protocol import ErrorCode, ToolResult, UserMessage
from codelab_gateway.transport.capabilities import CapabilityError, tools_from_query
from codelab_gateway.transport.inbound import FrameError, parse_frame

IDE_FRAMES = Path(__file__).resolve().parents[2] / "tests" / "data" / "ide-frames.json"


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("{not json", "Invalid JSON message"),
        ("[1, 2]", "must be a JSON object, got an array"),
        ('"hello"', "got a string"),
        ('{"content": "hi"}', "no 'type'"),
        ('{"type": null, "content": "hi"}', "no 'type'"),
        ('{"type": "dance"}', "unknown frame type 'dance'"),
        ('{"type": []}', "'type' must be a string, got an array"),
        ('{"type": {}}', "'type' must be a string, got an object"),
        ('{"type": 7}', "'type' must be a string, got a number"),
        ('{"type": "cancel", "message_id": 5}', "invalid cancel: message_id"),
        ('{"type": "resume", "last_seq": -1}', "invalid resume: last_seq"),
        ('{"type": "tool_result", "tool_name": "read_file"}', "invalid tool_result: call_id: Field required"),
        ('{"type": "user_message", "content": ""}', "invalid user_message: content: String should have at least"),
        ('{"type": "user_message"}', "invalid user_message: content: Field required"),
        ('{"type": "tool_result", "call_id": "c1", "result": 5}', "invalid tool_result: result"),
    ],
)
def test_bad_frames_are_explained(text: str, complaint: str) -> None:
    with pytest.raises(FrameError, match=complaint.replace("(", r"\(").replace("[", r"\[")):
        parse_frame(text, max_bytes=1 << 20, max_tool_result_bytes=1 << 20)


def test_oversized_frame_names_the_limit() -> None:
    text = orjson.dumps({"type": "user_message", "content": "я" * 1000}).decode()  # 1000 chars, 2000+ bytes
    with pytest.raises(FrameError, match=f"frame is {len(text.encode())} bytes; the limit is 1024 bytes"):
        parse_frame(text, max_bytes=1024, max_tool_result_bytes=4096)


def test_ide_frames_with_all_keys_and_nulls_parse() -> None:
    frames = orjson.loads(IDE_FRAMES.read_bytes())
    examples = {name: frame for name, frame in frames.items() if not name.startswith("_")}
    assert all(len(frame) == 15 for frame in examples.values())
    message = parse_frame(orjson.dumps(examples["user_message"]).decode(), 1 << 20, 1 << 20)
    assert isinstance(message, UserMessage) and message.content.startswith("Открой")
    for name, frame in examples.items():
        if frame["type"] == "tool_result":
            result = parse_frame(orjson.dumps(frame).decode(), 1 << 20, 1 << 20)
            assert isinstance(result, ToolResult), name
            assert result.call_id == frame["call_id"]
            assert (result.result, result.error) == (frame["result"], frame["error"])
    assert parse_frame(orjson.dumps(examples["switch_agent"]).decode(), 1 << 20, 1 << 20) is None


def test_tools_query_accepts_model_and_wire_names() -> None:
    assert tools_from_query("read_file, git.diff,read_file", None).tools == ["read_file", "git_diff"]
    assert tools_from_query(None, ("read_file",)).tools == ["read_file"]
    assert tools_from_query(None, None).tools is None
    assert tools_from_query("", None).tools == []
    with pytest.raises(CapabilityError, match="unknown tools in \\?tools=: rm_rf"):
        tools_from_query("read_file,rm_rf", None)


def test_a_tool_result_may_be_larger_than_other_frames_up_to_its_own_limit() -> None:
    output = "x" * 3000
    result = orjson.dumps({"type": "tool_result", "call_id": "c1", "result": {"output": output}}).decode()
    frame = parse_frame(result, max_bytes=1024, max_tool_result_bytes=4096)
    assert isinstance(frame, ToolResult) and frame.result == {"output": output}
    message = orjson.dumps({"type": "user_message", "content": output}).decode()
    with pytest.raises(FrameError, match="the limit is 1024 bytes") as refused:
        parse_frame(message, max_bytes=1024, max_tool_result_bytes=4096)
    assert refused.value.code is ErrorCode.TOO_LARGE
    with pytest.raises(FrameError, match="the limit is 4096 bytes"):
        parse_frame(result.replace(output, output * 2), max_bytes=1024, max_tool_result_bytes=4096)


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
def test_deep_nesting_is_refused_with_a_reason(depth: int) -> None:
    nested = "[" * depth + "]" * depth
    text = '{"type": "tool_result", "call_id": "c1", "result": {"data": ' + nested + "}}"
    with pytest.raises(FrameError, match=r"nests deeper than 64 levels|Invalid JSON message") as refused:
        parse_frame(text, max_bytes=1 << 20, max_tool_result_bytes=1 << 20)
    assert refused.value.code is ErrorCode.INVALID_FORMAT
    assert len(str(refused.value)) <= 300
