"""Dialects render one event log: the stream dialect passes frames through, the IDE dialect joins deltas."""

from typing import Any

import orjson

from codelab_gateway.services.dialects import IdeDialect, StreamDialect
from codelab_gateway.services.outbound_log import OutboundLog


def _log(*frames: dict[str, Any]) -> OutboundLog:
    log = OutboundLog(capacity=100)
    for frame in frames:
        log.append(frame["type"], orjson.dumps(frame).decode(), frame)
    return log


def _delta(text: str, final: bool = False) -> dict[str, Any]:
    return {"type": "assistant_message", "message_id": "m1", "content": text, "token": text, "is_final": final}


TOOL_CALL = {"type": "tool_call", "call_id": "c1", "tool_name": "read_file", "arguments": {"path": "a"}}
ACK = {"type": "ack", "status": "received", "message_id": "m1"}


def test_stream_dialect_sends_every_frame_verbatim() -> None:
    log = _log(ACK, _delta("Hel"), _delta("lo"), _delta("", final=True))
    dialect = StreamDialect()
    sent = [text for entry in log.after(0) for text in dialect.render(entry)]
    assert sent == [entry.text for entry in log.after(0)]


def test_ide_dialect_joins_text_and_flushes_before_tool_calls_and_at_the_end() -> None:
    log = _log(
        ACK,
        _delta("Let me "),
        _delta("look."),
        TOOL_CALL,
        {"type": "plan_update", "content": "an extension frame"},
        _delta("It prints "),
        _delta("hi."),
        _delta("", final=True),
    )
    dialect = IdeDialect()
    sent = [orjson.loads(text) for entry in log.after(0) for text in dialect.render(entry)]
    assert [frame["type"] for frame in sent] == ["assistant_message", "tool_call", "assistant_message"]
    assert sent[0] == {
        "type": "assistant_message",
        "message_id": "m1",
        "content": "Let me look.",
        "token": "Let me look.",
        "is_final": True,
    }
    assert sent[1] == TOOL_CALL
    assert sent[2]["content"] == "It prints hi." and sent[2]["is_final"] is True


def test_ide_dialect_flushes_text_before_an_error_and_sends_no_empty_bubbles() -> None:
    error = {"type": "error", "code": "LLM_ERROR", "content": "model failed", "error": "model failed"}
    dialect = IdeDialect()
    sent = []
    for entry in _log(_delta("partial"), error, _delta("", final=True)).after(0):
        sent += [orjson.loads(text) for text in dialect.render(entry)]
        if entry.type == "assistant_message" and not entry.frame["is_final"]:
            assert dialect.holding
    assert [(frame["type"], frame["content"]) for frame in sent] == [
        ("assistant_message", "partial"),
        ("error", "model failed"),
    ]
    assert not dialect.holding


def test_log_keeps_the_newest_entries_and_numbers_them_in_order() -> None:
    log = _log(*(_delta(str(n)) for n in range(15)))
    assert log.last_seq == 15
    bounded = OutboundLog(capacity=10)
    for n in range(15):
        bounded.append("assistant_message", str(n), {})
    assert [entry.seq for entry in bounded.after(0)] == list(range(6, 16))
    assert [entry.text for entry in bounded.after(13)] == ["13", "14"]
    assert bounded.after(15) == []
