"""Dialects render one event log: the stream dialect passes frames through, the IDE dialect joins deltas."""

from typing import Any

import orjson

from codelab_common.protocol import frame_type
from codelab_gateway.transport.dialects import IdeDialect, StreamDialect


def _log(*frames: dict[str, Any]) -> list[str]:
    """Frames as agent-runtime logs them: `type` first, `seq` last."""
    return [orjson.dumps({**frame, "seq": seq}).decode() for seq, frame in enumerate(frames, 1)]


def _delta(text: str, final: bool = False) -> dict[str, Any]:
    return {"type": "assistant_message", "message_id": "m1", "content": text, "token": text, "is_final": final}


TOOL_CALL = {"type": "tool_call", "call_id": "c1", "tool_name": "read_file", "arguments": {"path": "a"}}
ACK = {"type": "ack", "status": "received", "message_id": "m1"}


def test_stream_dialect_sends_every_frame_verbatim() -> None:
    log = _log(ACK, _delta("Hel"), _delta("lo"), _delta("", final=True))
    dialect = StreamDialect()
    sent = [text for entry in log for text in dialect.render(entry)]
    assert sent == log


def test_ide_dialect_joins_text_and_flushes_before_tool_calls_and_at_the_end() -> None:
    log = _log(
        ACK,
        _delta("Let me "),
        _delta("look."),
        TOOL_CALL,
        {"type": "approval_recorded", "content": "an extension frame"},
        _delta("It prints "),
        _delta("hi."),
        _delta("", final=True),
    )
    dialect = IdeDialect()
    sent = [orjson.loads(text) for entry in log for text in dialect.render(entry)]
    assert [frame["type"] for frame in sent] == ["assistant_message", "tool_call", "assistant_message"]
    assert sent[0] == {
        "type": "assistant_message",
        "message_id": "m1",
        "content": "Let me look.",
        "token": "Let me look.",
        "is_final": True,
    }
    assert sent[1] == {**TOOL_CALL, "seq": 4}
    assert sent[2]["content"] == "It prints hi." and sent[2]["is_final"] is True


def test_ide_dialect_flushes_text_before_an_error_and_sends_no_empty_bubbles() -> None:
    error = {"type": "error", "code": "LLM_ERROR", "content": "model failed", "error": "model failed"}
    dialect = IdeDialect()
    sent = []
    for entry in _log(_delta("partial"), error, _delta("", final=True)):
        sent += [orjson.loads(text) for text in dialect.render(entry)]
        if frame_type(entry) == "assistant_message" and not orjson.loads(entry)["is_final"]:
            assert dialect.holding
    assert [(frame["type"], frame["content"]) for frame in sent] == [
        ("assistant_message", "partial"),
        ("error", "model failed"),
    ]
    assert not dialect.holding


def test_the_frame_type_is_read_without_parsing_and_falls_back_to_json() -> None:
    assert frame_type('{"type":"tool_call","call_id":"c"}') == "tool_call"
    assert frame_type('{ "type": "ack" }') == "ack"
