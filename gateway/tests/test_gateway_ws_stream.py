"""The seed's `/ws/` path through the real chain: ACKs, token deltas, tool rounds, client capabilities."""

from typing import Any

import aiohttp
import pytest

from codelab_common.protocol import IDE_TOOLS
from tests.fixtures.gateway import RunningGateway


def _text(frames: list[dict[str, Any]]) -> str:
    return "".join(frame["content"] for frame in frames if frame["type"] == "assistant_message")


def _offered_tools(request: dict[str, Any]) -> list[str]:
    return sorted(tool["function"]["name"] for tool in request.get("tools") or [])


async def test_ack_then_token_deltas_then_final(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("Hello from the model, streamed in pieces.", chunk_delay=0.03)
    async with gateway.connect("stream-1") as client:
        await client.say("hi", message_id="m-42")
        frames = await client.turn()
    assert frames[0] == {"type": "ack", "status": "received", "message_id": "m-42", "seq": 1}
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1)), "numbered in order, no gap"
    deltas, final = frames[1:-1], frames[-1]
    assert len(deltas) > 1, "the answer must arrive token by token"
    assert all(f["type"] == "assistant_message" and f["is_final"] is False for f in deltas)
    assert all(f["content"] == f["token"] for f in deltas)
    assert _text(deltas) == "Hello from the model, streamed in pieces."
    assert final["is_final"] is True and final["content"] == "" and final["stop_reason"] == "completed"
    assert {f["message_id"] for f in frames} == {"m-42"}
    assert gateway.upstream.requests[-1]["messages"][-1] == {"role": "user", "content": "hi"}


async def test_gateway_assigns_a_message_id_that_the_whole_turn_carries(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("ok")
    async with gateway.connect("stream-2") as client:
        await client.say("hi")
        frames = await client.turn()
    message_id = frames[0]["message_id"]
    assert frames[0]["type"] == "ack" and message_id
    assert {f["message_id"] for f in frames[1:]} == {message_id}


async def test_tool_round_trip_over_the_socket(gateway: RunningGateway) -> None:
    upstream = gateway.upstream
    upstream.reply_tool_calls(("read_file", {"path": "main.py"}), ("list_files", {"path": "."}), text="Looking.")
    upstream.reply_tool_calls(("search_in_project", {"query": "print"}))
    upstream.reply_text("main.py prints hi.")
    async with gateway.connect("stream-tools") as client:
        await client.say("what does main.py do?")
        first = await client.recv_until(lambda f: f["type"] == "tool_call" and f["tool_name"] == "list_files")
        calls = [f for f in first if f["type"] == "tool_call"]
        assert [c["tool_name"] for c in calls] == ["read_file", "list_files"]
        assert calls[0]["arguments"] == {"path": "main.py"} and calls[0]["requires_approval"] is False
        assert _text(first) == "Looking."
        await client.send({"type": "tool_result", "call_id": calls[0]["call_id"], "result": {"content": "print('hi')"}})
        await client.send({"type": "tool_result", "call_id": calls[1]["call_id"], "result": "main.py\nREADME.md"})
        second = await client.recv_until(lambda f: f["type"] == "tool_call")
        assert second[-1]["tool_name"] == "search_in_project"
        await client.send({"type": "tool_result", "call_id": second[-1]["call_id"], "error": "no matches"})
        rest = await client.turn()
    assert _text(rest) == "main.py prints hi."
    assert len(upstream.requests) == 3
    tool_messages = [m for m in upstream.requests[-1]["messages"] if m["role"] == "tool"]
    assert "print('hi')" in tool_messages[0]["content"]
    assert "README.md" in tool_messages[1]["content"]
    assert "no matches" in tool_messages[2]["content"]


async def test_seed_path_offers_every_tool_by_default(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("ok")
    async with gateway.connect("tools-all") as client:
        await client.say("hi")
        await client.turn()
    assert set(IDE_TOOLS) < set(_offered_tools(gateway.upstream.requests[-1]))
    assert "apply_patch" in _offered_tools(gateway.upstream.requests[-1])


async def test_tools_query_limits_what_the_model_is_offered(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("ok")
    async with gateway.connect("tools-some", query="tools=read_file,git.diff") as client:
        await client.say("hi")
        await client.turn()
    assert _offered_tools(gateway.upstream.requests[-1]) == ["git_diff", "read_file", "update_plan"]


async def test_unknown_tool_in_query_is_refused_at_connect(gateway: RunningGateway) -> None:
    async with gateway.connect("tools-bad", query="tools=read_file,format_disk") as client:
        error = await client.recv()
        assert error["type"] == "error" and error["code"] == "INVALID_FORMAT"
        assert "format_disk" in error["content"]
        code, _ = await client.closed()
    assert code == 1008


async def test_invalid_session_id_gets_an_error_and_close_1008(gateway: RunningGateway) -> None:
    async with gateway.connect("bad$id") as client:
        error = await client.recv()
        code, reason = await client.closed()
    assert error["code"] == "INVALID_SESSION" and "session id" in error["content"]
    assert (code, reason) == (1008, "INVALID_SESSION")


async def test_second_message_during_a_turn_is_busy(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("a slow answer that takes a while", chunk_delay=0.05)
    async with gateway.connect("busy") as client:
        await client.say("first", message_id="m1")
        assert (await client.recv())["type"] == "ack"
        await client.say("second", message_id="m2")
        frames = await client.turn()
        busy = [f for f in frames if f["type"] == "error"]
        assert [(f["code"], f["message_id"]) for f in busy] == [("BUSY", "m2")]
        assert "seq" not in busy[0], "an answer to the client's own frame is not part of the session's log"
        assert _text(frames) == "a slow answer that takes a while"
        gateway.upstream.reply_text("now free")
        await client.say("third", message_id="m3")
        after = await client.turn()
    assert after[0] == {"type": "ack", "status": "received", "message_id": "m3", "seq": frames[-1]["seq"] + 1}
    assert _text(after) == "now free"
    assert [r["messages"][-1]["content"] for r in gateway.upstream.requests] == ["first", "third"]


async def test_message_while_tool_results_are_awaited_is_busy(gateway: RunningGateway) -> None:
    gateway.upstream.reply_tool_calls(("read_file", {"path": "a.py"}))
    gateway.upstream.reply_text("done")
    async with gateway.connect("busy-tools") as client:
        await client.say("read a.py")
        call = (await client.recv_until(lambda f: f["type"] == "tool_call"))[-1]
        await client.say("hurry up")
        busy = await client.recv()
        assert busy["code"] == "BUSY" and call["call_id"] in busy["content"]
        await client.send({"type": "tool_result", "call_id": call["call_id"], "result": {"content": "x = 1"}})
        assert _text(await client.turn()) == "done"
    assert len(gateway.upstream.requests) == 2


async def test_health_is_open_and_internal_endpoints_need_the_key(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("ok")
    async with gateway.connect("listed") as client:
        await client.say("hi")
        await client.turn()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{gateway.url}/health") as health:
                assert health.status == 200 and (await health.json())["service"] == "gateway"
            async with http.get(f"{gateway.url}/ready") as ready:
                assert ready.status == 200 and (await ready.json())["checks"] == {"agent_runtime": "ok"}
            for path in ("/internal/sessions", "/metrics"):
                async with http.get(gateway.url + path) as refused:
                    assert refused.status == 401
                    assert (await refused.json())["error"]["code"] == "UNAUTHORIZED"
            async with http.get(f"{gateway.url}/internal/sessions", headers=gateway.headers) as listed:
                sessions = (await listed.json())["sessions"]
            async with http.get(f"{gateway.url}/metrics", headers=gateway.headers) as metrics:
                text = await metrics.text()
    [session] = sessions
    assert session["session_id"] == "listed" and session["connected"] is True and session["dialect"] == "stream"
    assert session["delivered_seq"] > 2
    assert 'gateway_frames_received_total{type="user_message"} 1.0' in text
    assert 'gateway_frames_sent_total{type="ack"} 1.0' in text


async def test_result_for_a_call_nobody_made_is_forwarded_and_answered(gateway: RunningGateway) -> None:
    gateway.upstream.reply_text("fine")
    async with gateway.connect("stray") as client:
        await client.send({"type": "tool_result", "call_id": "call_never_made", "result": {"ok": True}})
        error = await client.recv()
        assert (error["code"], error["call_id"]) == ("UNKNOWN_CALL_ID", "call_never_made")
        assert "timed out" not in error["content"]  # agent-runtime answered, not the gateway's timeout bookkeeping
        await client.say("hi")
        assert _text(await client.turn()) == "fine"


@pytest.mark.parametrize("gateway_overrides", [{"agent_max_event_bytes": 4096}])
async def test_an_event_beyond_the_gateways_limit_is_an_error_frame(gateway: RunningGateway) -> None:
    """agent-runtime's stream is read in whole chunks and split by the gateway itself; a line longer than
    `agent_max_event_bytes` is still refused, with a clear error."""
    gateway.upstream.reply_text("x" * 20_000)
    async with gateway.connect("stream-too-long") as client:
        await client.say("say a lot")
        error = (await client.recv_until(lambda f: f["type"] == "error"))[-1]
        assert error["code"] == "INTERNAL" and "unreadable stream" in error["error"], error
