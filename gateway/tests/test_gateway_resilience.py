"""Sessions outlive their sockets and their failures: resume by seq, tool timeouts, replaced connections, a gateway
or agent-runtime that goes away, cancel, and no BUSY right after a turn ends."""

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from codelab_agent_runtime.main import create_app as create_agent_runtime
from codelab_common.testing import free_port, serve_app
from tests.fixtures.agent_runtime import RunningAgentRuntime, agent_runtime_settings
from tests.fixtures.gateway import RunningGateway, WsClient, is_final_message
from tests.fixtures.llm_proxy import RunningLLMProxy


def _text(frames: list[dict[str, Any]]) -> str:
    return "".join(frame["content"] for frame in frames if frame["type"] == "assistant_message")


def _seqs(frames: list[dict[str, Any]]) -> list[int]:
    return [frame["seq"] for frame in frames if "seq" in frame]


async def _recv_n(client: WsClient, count: int) -> list[dict[str, Any]]:
    return [await client.recv() for _ in range(count)]


@pytest.mark.parametrize("agent_runtime_overrides", [{"tool_timeout_s": 0.5}], indirect=True)
async def test_unanswered_tool_call_times_out_and_the_model_is_told(gateway: RunningGateway) -> None:
    gateway.upstream.reply_tool_calls(("read_file", {"path": "big.log"}))
    gateway.upstream.reply_text("The read timed out, so I cannot tell.")
    async with gateway.connect("timeout") as client:
        await client.say("summarise big.log", message_id="m-t")
        call = (await client.recv_until(lambda f: f["type"] == "tool_call"))[-1]
        timeout = await client.recv(timeout=3)
        assert timeout["type"] == "error" and timeout["code"] == "TOOL_TIMEOUT" and timeout["seq"] == call["seq"] + 1
        assert timeout["call_id"] == call["call_id"] and timeout["message_id"] == "m-t"
        rest = await client.turn()
        assert _text(rest) == "The read timed out, so I cannot tell."
        await client.send({"type": "tool_result", "call_id": call["call_id"], "result": {"content": "too late"}})
        late = await client.recv()
    assert (late["code"], late["call_id"]) == ("UNKNOWN_CALL_ID", call["call_id"]) and "seq" not in late
    [tool_message] = [m for m in gateway.upstream.requests[-1]["messages"] if m["role"] == "tool"]
    assert tool_message["tool_call_id"] == call["call_id"]
    assert "tool timed out after 0.5 s" in tool_message["content"]
    assert len(gateway.upstream.requests) == 2


async def test_a_client_that_stalls_and_drops_resumes_with_exactly_the_missing_frames(
    gateway: RunningGateway,
) -> None:
    answer = "".join(f"token{n} " for n in range(60))
    gateway.upstream.reply_text(answer, chunk_size=7, chunk_delay=0.02)
    async with gateway.connect("stall") as client:
        await client.say("go", message_id="m-s")
        held = await _recv_n(client, 5)
        await asyncio.sleep(0.6)  # the client stops reading; the turn goes on and the socket buffers fill
    async with gateway.connect("stall", query=f"last_seq={held[-1]['seq']}") as client:
        rest = await client.turn()
    frames = held + rest
    assert _seqs(frames) == list(range(1, len(frames) + 1)), "every frame once, in order, no gap"
    assert _text(frames) == answer and frames[-1]["stop_reason"] == "completed"
    assert len(gateway.upstream.requests) == 1


async def test_a_tool_call_lost_in_a_drop_is_sent_again_on_resume_and_answered_once(gateway: RunningGateway) -> None:
    gateway.upstream.reply_tool_calls(("list_files", {"path": "."}), text="Listing.")
    gateway.upstream.reply_text("Two files.")
    async with gateway.connect("lost-call") as client:
        await client.say("what is here?")
        held = await client.recv_until(lambda f: f["type"] == "assistant_message")  # the call is never read
    async with gateway.connect("lost-call", query=f"last_seq={held[-1]['seq']}") as client:
        rest = await client.recv_until(lambda f: f["type"] == "tool_call")
        call = rest[-1]
        result = {"type": "tool_result", "call_id": call["call_id"], "result": {"items": ["a", "b"]}}
        await client.send(result)
        await client.send(result)  # sent twice (a client unsure it arrived): acknowledged, applied once
        after = await client.turn()
    frames = held + rest + after
    assert _seqs(frames) == list(range(1, len(frames) + 1))
    assert _text(after) == "Two files." and not [f for f in after if f["type"] == "error"]
    assert len(gateway.upstream.requests) == 2
    tools = [m for m in gateway.upstream.requests[-1]["messages"] if m["role"] == "tool"]
    assert len(tools) == 1


async def test_disconnect_mid_turn_then_reconnect_without_last_seq_receives_the_rest(gateway: RunningGateway) -> None:
    answer = "This answer keeps streaming while the client is away."
    gateway.upstream.reply_text(answer, chunk_delay=0.05)
    async with gateway.connect("resume") as client:
        await client.say("go", message_id="m-r")
        before = [await client.recv(), await client.recv()]
    assert [f["type"] for f in before] == ["ack", "assistant_message"]
    await asyncio.sleep(0.2)
    async with gateway.connect("resume") as client:
        after = await client.turn()
    assert _text(before) + _text(after) == answer
    assert {f["message_id"] for f in after} == {"m-r"}
    assert _seqs(before + after) == list(range(1, len(before + after) + 1))


async def test_reconnect_after_the_turn_ended_gets_the_missed_message(
    gateway: RunningGateway, agent_runtime: RunningAgentRuntime
) -> None:
    gateway.upstream.reply_text("Finished while you were gone.", chunk_delay=0.02)
    async with gateway.connect("resume-later", ide=True) as client:
        await client.say("go")
    await agent_runtime.wait_until_idle("resume-later")
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


async def test_a_new_gateway_serves_an_ide_that_reconnects_mid_turn_with_the_turn_so_far(
    make_gateway: Any, agent_runtime: RunningAgentRuntime
) -> None:
    """The IDE sends no last_seq and the new gateway never saw it: it gets the turn's text so far as one message
    and every tool call still unanswered, so nothing it must act on is lost."""
    first = await make_gateway()
    first.upstream.reply_tool_calls(("read_file", {"path": "a.py"}), text="Reading a.py.")
    first.upstream.reply_text("It is empty.")
    async with first.connect("ide-moved", ide=True) as client:
        await client.say("what is in a.py?")
        await client.recv_until(lambda f: f["type"] == "tool_call")
    second = await make_gateway()
    async with second.connect("ide-moved", ide=True) as client:
        message, call = await client.recv(), await client.recv()
        assert (message["content"], call["type"]) == ("Reading a.py.", "tool_call")
        await client.send({"type": "tool_result", "call_id": call["call_id"], "result": {"content": ""}})
        assert (await client.recv())["content"] == "It is empty."


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
        frames = await client.recv_until(lambda f: f.get("message_id") == "m-down")
        assert {(f["code"], "seq" in f) for f in frames} == {("AGENT_DOWN", False)}
        assert "unreachable" in frames[-1]["content"]
        async with serve_app(create_agent_runtime(settings), port=port):
            await asyncio.sleep(2.5)  # the follower finds agent-runtime back
            await client.say("three")
            after = await client.turn()
    assert _text(after) == "answer after the restart"
    assert [r["messages"][-1]["content"] for r in gateway.upstream.requests] == ["one", "three"]


async def test_wrong_agent_runtime_key_is_reported_as_agent_down(make_gateway: Any) -> None:
    gateway = await make_gateway(agent_runtime_api_key="not-the-key")
    async with gateway.connect("unauthorised") as client:
        down = await client.recv()
        assert down["code"] == "AGENT_DOWN" and "401" in down["content"]
        await client.say("hi")
        refused = await client.recv()
        assert refused["code"] == "AGENT_DOWN" and "401" in refused["content"]


@pytest.mark.parametrize("gateway_overrides", [{"frames_per_second": 10_000, "frame_burst": 10_000}])
async def test_a_message_sent_the_instant_a_turn_ends_is_never_busy(gateway: RunningGateway) -> None:
    turns = 1_000
    for _ in range(turns):
        gateway.upstream.reply_text("ok")
    busy = 0
    async with gateway.connect("no-busy") as client:
        for n in range(turns):
            await client.say(f"message {n}")
            frames = await client.recv_until(lambda f: is_final_message(f) or f.get("code") == "BUSY", timeout=10)
            busy += frames[-1].get("code") == "BUSY"
    assert busy == 0


async def test_cancel_while_streaming_ends_the_turn_and_keeps_what_was_said(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("word " * 300, chunk_size=5, chunk_delay=0.03)
    gateway.upstream.reply_text("after the cancel")
    async with gateway.connect("cancel-stream") as client:
        await client.say("talk", message_id="m-c")
        before = await _recv_n(client, 4)
        await client.send({"type": "cancel", "message_id": "m-c"})
        rest = await client.turn()
        shown = _text(before + rest)
        await client.say("again")
        after = await client.turn()
    assert rest[-1]["stop_reason"] == "cancelled" and 0 < len(shown) < len("word " * 300)
    assert gateway.upstream.streams_cut == 1
    assert _text(after) == "after the cancel"
    history = gateway.upstream.requests[-1]["messages"]
    assert history[-2] == {"role": "assistant", "content": shown}


@pytest.mark.parametrize("approval", [False, True], ids=["tool-call", "approval"])
async def test_cancel_while_a_tool_call_waits_resolves_it_as_cancelled(gateway: RunningGateway, approval: bool) -> None:
    call = ("write_file", {"path": "a.txt", "content": "x"}) if approval else ("read_file", {"path": "a.txt"})
    gateway.upstream.reply_tool_calls(call)
    gateway.upstream.reply_text("next turn")
    async with gateway.connect("cancel-call") as client:
        await client.say("do it")
        sent = (await client.recv_until(lambda f: f["type"] == "tool_call"))[-1]
        assert sent["requires_approval"] is approval
        await client.send({"type": "cancel"})
        final = await client.recv()
        await client.send({"type": "tool_result", "call_id": sent["call_id"], "result": "too late"})
        late = await client.recv()
        await client.say("go on")
        after = await client.turn()
    assert final["is_final"] and final["stop_reason"] == "cancelled"
    assert late["code"] == "UNKNOWN_CALL_ID"
    assert _text(after) == "next turn"
    history = gateway.upstream.requests[-1]["messages"]
    assert [m["role"] for m in history[1:]] == ["user", "assistant", "tool", "assistant", "user"]
    assert "cancelled" in history[3]["content"]


async def test_the_sessions_a_gateway_remembers_are_capped(make_gateway: Any) -> None:
    gateway = await make_gateway(max_sessions=2)
    gateway.upstream.reply_text("a")
    gateway.upstream.reply_text("b")
    gateway.upstream.reply_text("c")
    for session in ("oldest", "newer", "newest"):
        async with gateway.connect(session) as client:
            await client.say("hi")
            await client.turn()
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{gateway.url}/internal/sessions", headers=gateway.headers) as response,
    ):
        remembered = sorted(s["session_id"] for s in (await response.json())["sessions"])
    assert remembered == ["newer", "newest"]
