"""Sessions outlive their sockets and their failures: tool timeouts, disconnects, replacements, agent-runtime down."""

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from codelab_agent_runtime.main import create_app as create_agent_runtime
from codelab_common.testing import free_port, serve_app
from tests.fixtures.agent_runtime import agent_runtime_settings
from tests.fixtures.gateway import RunningGateway
from tests.fixtures.llm_proxy import RunningLLMProxy


def _text(frames: list[dict[str, Any]]) -> str:
    return "".join(frame["content"] for frame in frames if frame["type"] == "assistant_message")


async def _session_info(gateway: RunningGateway, session_id: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.url}/internal/sessions", headers=gateway.headers) as response,
    ):
        sessions = (await response.json())["sessions"]
    return next(s for s in sessions if s["session_id"] == session_id)


async def _wait_until_turn(gateway: RunningGateway, session_id: str, state: str | None) -> dict[str, Any]:
    """Poll the internal sessions endpoint until the session's turn is in `state` (None: no turn)."""
    for _ in range(100):
        info = await _session_info(gateway, session_id)
        if (info["turn"] or {}).get("state") == state:
            return info
        await asyncio.sleep(0.05)
    raise AssertionError(f"turn of {session_id} never reached {state}: {info}")


@pytest.mark.parametrize("gateway_overrides", [{"tool_timeout_s": 0.5}])
async def test_unanswered_tool_call_times_out_and_the_model_is_told(gateway: RunningGateway) -> None:
    gateway.upstream.reply_tool_calls(("read_file", {"path": "big.log"}))
    gateway.upstream.reply_text("The read timed out, so I cannot tell.")
    async with gateway.connect("timeout") as client:
        await client.say("summarise big.log", message_id="m-t")
        call = (await client.recv_until(lambda f: f["type"] == "tool_call"))[-1]
        timeout = await client.recv(timeout=3)
        assert timeout["type"] == "error" and timeout["code"] == "TOOL_TIMEOUT"
        assert timeout["call_id"] == call["call_id"] and timeout["message_id"] == "m-t"
        rest = await client.turn()
        assert _text(rest) == "The read timed out, so I cannot tell."
        await client.send({"type": "tool_result", "call_id": call["call_id"], "result": {"content": "too late"}})
        late = await client.recv()
    assert (late["code"], late["call_id"]) == ("UNKNOWN_CALL_ID", call["call_id"])
    [tool_message] = [m for m in gateway.upstream.requests[-1]["messages"] if m["role"] == "tool"]
    assert tool_message["tool_call_id"] == call["call_id"]
    assert "tool timed out after 0.5 s" in tool_message["content"]
    assert len(gateway.upstream.requests) == 2


async def test_disconnect_mid_turn_then_reconnect_receives_the_rest(gateway: RunningGateway) -> None:
    answer = "This answer keeps streaming while the client is away."
    gateway.upstream.reply_text(answer, chunk_delay=0.05)
    async with gateway.connect("resume") as client:
        await client.say("go", message_id="m-r")
        before = [await client.recv(), await client.recv()]
    assert [f["type"] for f in before] == ["ack", "assistant_message"]
    await asyncio.sleep(0.2)  # the turn goes on with no client; frames are kept for the session
    async with gateway.connect("resume") as client:
        after = await client.turn()
    assert _text(before) + _text(after) == answer
    assert {f["message_id"] for f in after} == {"m-r"}
    assert len(gateway.upstream.requests) == 1


async def test_reconnect_after_the_turn_ended_gets_the_buffered_frames(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("Finished while you were gone.", chunk_delay=0.02)
    async with gateway.connect("resume-later", ide=True) as client:
        await client.say("go")
    info = await _wait_until_turn(gateway, "resume-later", None)
    assert info["connected"] is False and info["delivered_seq"] < info["last_seq"]
    async with gateway.connect("resume-later", ide=True) as client:
        message = await client.recv()
        await client.silent(0.3)
    assert (message["content"], message["is_final"]) == ("Finished while you were gone.", True)


async def test_ide_client_that_drops_mid_message_still_gets_the_whole_message(gateway: RunningGateway) -> None:
    answer = "Half of this was streamed before the IDE dropped, half after."
    gateway.upstream.reply_text(answer, chunk_delay=0.03)
    async with gateway.connect("resume-ide", ide=True) as client:
        await client.say("go")
        await asyncio.sleep(0.15)  # some deltas reached the IDE dialect, which holds them until the message ends
    async with gateway.connect("resume-ide", ide=True) as client:
        message = await client.recv()
        await client.silent(0.2)
    assert (message["content"], message["is_final"]) == (answer, True)


async def test_tool_call_relayed_while_away_is_delivered_and_answered_after_reconnect(
    gateway: RunningGateway,
) -> None:
    gateway.upstream.reply_tool_calls(("list_files", {"path": "."}), text="Listing the project.")
    gateway.upstream.reply_text("Two files.")
    async with gateway.connect("resume-tools", ide=True) as client:
        await client.say("what is here?")
    info = await _wait_until_turn(gateway, "resume-tools", "awaiting_tool_results")
    assert info["connected"] is False and len(info["turn"]["pending_call_ids"]) == 1
    async with gateway.connect("resume-tools", ide=True) as client:
        message, call = await client.recv(), await client.recv()
        assert message["content"] == "Listing the project." and call["type"] == "tool_call"
        await client.send({"type": "tool_result", "call_id": call["call_id"], "result": {"items": ["a", "b"]}})
        assert (await client.recv())["content"] == "Two files."


async def test_a_new_connection_replaces_the_old_one(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("to the new socket")
    async with gateway.connect("replace") as old, gateway.connect("replace") as new:
        code, reason = await old.closed()
        assert (code, reason) == (4000, "replaced")
        await new.say("hello")
        frames = await new.turn()
    assert _text(frames) == "to the new socket"


async def test_agent_runtime_down_then_back_on_the_same_port(
    make_gateway: Any, llm_proxy: RunningLLMProxy, tmp_path: Path
) -> None:
    port = free_port()
    gateway = await make_gateway(agent_runtime_url=f"http://127.0.0.1:{port}")
    settings = agent_runtime_settings(llm_proxy, tmp_path / "restarted-agent.db")
    gateway.upstream.reply_text("first answer")
    gateway.upstream.reply_text("answer after the restart")
    async with gateway.connect("down") as client:
        async with serve_app(create_agent_runtime(settings), port=port):
            await client.say("one")
            assert _text(await client.turn()) == "first answer"
        await client.say("two", message_id="m-down")
        frames = await client.recv_until(lambda f: f["type"] == "error")
        assert frames[0]["type"] == "ack"
        assert (frames[-1]["code"], frames[-1]["message_id"]) == ("AGENT_DOWN", "m-down")
        assert "unreachable" in frames[-1]["content"]
        async with serve_app(create_agent_runtime(settings), port=port):
            await client.say("three")
            after = await client.turn()
    assert _text(after) == "answer after the restart"
    assert [r["messages"][-1]["content"] for r in gateway.upstream.requests] == ["one", "three"]


async def test_wrong_agent_runtime_key_is_reported_as_agent_down(make_gateway: Any) -> None:
    gateway = await make_gateway(agent_runtime_api_key="not-the-key")
    async with gateway.connect("unauthorised") as client:
        await client.say("hi")
        frames = await client.recv_until(lambda f: f["type"] == "error")
        error = frames[-1]
        assert error["code"] == "AGENT_DOWN" and "401" in error["content"]
        await client.say("again")
        assert [f["type"] for f in await client.recv_until(lambda f: f["type"] == "error")] == ["ack", "error"]


@pytest.mark.parametrize("gateway_overrides", [{"session_idle_ttl_s": 0.2}])
async def test_idle_sessions_are_forgotten(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("bye")
    async with gateway.connect("idle") as client:
        await client.say("hi")
        await client.turn()
    await asyncio.sleep(0.5)
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.url}/internal/sessions", headers=gateway.headers) as response,
    ):
        assert (await response.json())["sessions"] == []


async def _session_ids(gateway: RunningGateway) -> list[str]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.url}/internal/sessions", headers=gateway.headers) as response,
    ):
        return sorted(s["session_id"] for s in (await response.json())["sessions"])


async def test_the_session_cap_lets_go_of_the_longest_idle_session_first(make_gateway: Any) -> None:
    gateway = await make_gateway(max_sessions=2)
    async with gateway.connect("oldest"):
        pass
    async with gateway.connect("newer"):
        pass
    async with gateway.connect("newest"):
        assert await _session_ids(gateway) == ["newer", "newest"]
        async with gateway.connect("one-more"):
            assert await _session_ids(gateway) == ["newest", "one-more"], "sessions with a client stay"
