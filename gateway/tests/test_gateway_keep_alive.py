"""agent-runtime's `: keep-alive` comments never reach the client: the gateway's step-stream reader skips them."""

import pytest

from tests.fixtures.gateway import RunningGateway


@pytest.mark.parametrize("agent_runtime_overrides", [{"sse_keep_alive_s": 0.05}], indirect=True)
async def test_keep_alives_between_tokens_are_not_frames(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("slow tokens", chunk_size=4, chunk_delay=0.25)
    async with gateway.connect("keep-alive-1") as client:
        await client.say("hi", message_id="m-1")
        frames = await client.turn()
        await client.silent(0.2)
    assert frames[0]["type"] == "ack"
    assert [f["type"] for f in frames[1:]] == ["assistant_message"] * (len(frames) - 1)
    assert "".join(f["content"] for f in frames[1:]) == "slow tokens" and frames[-1]["is_final"] is True
