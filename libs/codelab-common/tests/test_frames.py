import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from codelab_common.protocol import AgentRequest, ToolResult, UserMessage, inbound_frame_adapter, resolve

IDE_FRAMES = json.loads((Path(__file__).resolve().parents[3] / "tests" / "data" / "ide-frames.json").read_text())


@pytest.mark.parametrize("name", [k for k in IDE_FRAMES if k.startswith(("user_message", "tool_result"))])
def test_the_ides_frames_with_all_15_keys_and_nulls_are_accepted(name: str) -> None:
    raw = IDE_FRAMES[name]
    assert len(raw) == 15
    frame = inbound_frame_adapter.validate_python(raw)
    assert frame.type == raw["type"]
    if isinstance(frame, ToolResult):
        assert frame.call_id == raw["call_id"]
        assert frame.error == raw["error"]


def test_a_null_role_falls_back_to_user() -> None:
    frame = inbound_frame_adapter.validate_python({"type": "user_message", "content": "hi", "role": None})
    assert isinstance(frame, UserMessage) and frame.role == "user"


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "user_message"},
        {"type": "user_message", "content": ""},
        {"type": "tool_result"},
        {"type": "tool_result", "call_id": ""},
        {"type": "tool_result", "call_id": "c1", "result": [1, 2]},
        {"type": "switch_agent", "agent_type": "coder"},
        {"content": "no type"},
    ],
)
def test_invalid_inbound_frames_are_rejected(raw: dict) -> None:
    with pytest.raises(ValidationError):
        inbound_frame_adapter.validate_python(raw)


def test_the_seeds_flat_body_becomes_a_user_message() -> None:
    request = AgentRequest.model_validate({"session_id": "s1", "type": "user_message", "content": "hello"})
    assert isinstance(request.message, UserMessage)
    assert request.message.content == "hello"


@pytest.mark.parametrize("session_id", ["", "../etc", "a b", "x" * 200])
def test_bad_session_ids_are_rejected(session_id: str) -> None:
    with pytest.raises(ValidationError):
        AgentRequest.model_validate({"session_id": session_id, "message": {"type": "user_message", "content": "x"}})


def test_tools_resolve_by_model_or_wire_name() -> None:
    git_diff = resolve("git.diff")
    assert git_diff is not None and git_diff.name == "git_diff"
    assert resolve("git_diff") is git_diff
    assert resolve("rm_rf") is None
