"""Every malformed client frame gets INVALID_FORMAT with a reason, and the same connection keeps working."""

from tests.fixtures.gateway import RunningGateway

APPROVAL = '{"type": "approval", "call_id": "c", '
BAD_FRAMES: list[tuple[str, str | bytes, str]] = [
    ("bad json", '{"type": "user_message", "content": ', "Invalid JSON message"),
    ("array", '[{"type": "user_message", "content": "hi"}]', "must be a JSON object, got an array"),
    ("missing type", '{"content": "hi"}', "no 'type'"),
    ("unknown type", '{"type": "plan_approve", "content": "hi"}', "unknown frame type 'plan_approve'"),
    ("tool_result without call_id", '{"type": "tool_result", "result": {"ok": true}}', "call_id: Field required"),
    ("empty content", '{"type": "user_message", "content": ""}', "content: String should have at least 1"),
    ("approval, unknown decision", APPROVAL + '"decision": "maybe"}', "decision: Input should"),
    ("approval, edit without arguments", APPROVAL + '"decision": "edit"}', "needs the edited"),
    ("approval, arguments a list", APPROVAL + '"decision": "edit", "arguments": [1]}', "valid dictionary"),
    ("approval, unknown rule tool", APPROVAL + '"decision": "approve", "remember": {"tool": "x"}}', "unknown tool"),
    (
        "approval, chained command rule",
        APPROVAL + '"decision": "approve", "remember": {"tool": "run_command", "command": "a;b"}}',
        "shell control characters",
    ),
    ("approval for no call", '{"type": "approval", "call_id": "nope", "decision": "reject"}', "No tool call nope"),
    ("binary frame", b'{"type": "user_message", "content": "hi"}', "binary frames are not supported"),
    ("oversized frame", '{"type": "user_message", "content": "' + "x" * 300_000 + '"}', "the limit is 262144"),
    (
        "nested too deep",
        '{"type": "tool_result", "call_id": "c", "result": {"a": ' + "[" * 80 + "]" * 80 + "}}",
        "64 levels",
    ),
]


async def test_bad_frames_are_explained_and_the_connection_stays_usable(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("still here")
    async with gateway.connect("bad-input") as client:
        for case, frame, reason in BAD_FRAMES:
            await client.send(frame)
            error = await client.recv()
            expected = {"approval for no call": "UNKNOWN_CALL_ID", "oversized frame": "TOO_LARGE"}.get(
                case, "INVALID_FORMAT"
            )
            assert (error["type"], error["code"]) == ("error", expected), (case, error)
            assert reason in error["content"] and error["error"] == error["content"], case
            if case == "bad json":
                assert error["content"].startswith("Invalid JSON message"), "the seed's wording, which clients match"
        await client.say("are you there?")
        frames = await client.turn()
    assert frames[0]["type"] == "ack"
    assert "".join(f["content"] for f in frames[1:]) == "still here"
    assert len(gateway.upstream.requests) == 1
