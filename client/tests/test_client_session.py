"""The session logic against the real gateway → agent-runtime → llm-proxy chain, the model scripted."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import uvicorn

from codelab_client.approvals import Decision, approve_all, reject_all
from codelab_client.events import SessionListener
from codelab_client.session import AgentSession, MessageRefused, SessionClosed, TurnStatus
from codelab_client.tools import ToolExecutor
from codelab_common.protocol import ToolCall
from codelab_common.testing import free_port


class Recorder(SessionListener):
    def __init__(self) -> None:
        self.deltas: list[str] = []
        self.calls: list[ToolCall] = []
        self.results: list[tuple[str, dict[str, Any] | None, str | None]] = []
        self.reconnects = 0

    def on_delta(self, text: str) -> None:
        self.deltas.append(text)

    def on_tool_call(self, call: ToolCall) -> None:
        self.calls.append(call)

    def on_tool_result(self, call: ToolCall, result: dict[str, Any] | None, error: str | None) -> None:
        self.results.append((call.tool_name, result, error))

    def on_reconnected(self) -> None:
        self.reconnects += 1


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m.get("role") == "tool"]


async def test_a_text_turn_streams_and_completes(gateway: Any, workspace: Path) -> None:
    gateway.upstream.reply_text("Hello from the model, streamed in small pieces.", chunk_delay=0.03)
    recorder = Recorder()
    async with AgentSession(gateway.ws_url, ToolExecutor(workspace), approve_all, listener=recorder) as session:
        result = await session.run_turn("hi", timeout=10)
    assert result.ok and result.status is TurnStatus.COMPLETED
    assert result.text == "Hello from the model, streamed in small pieces."
    assert len(recorder.deltas) > 1
    kinds = [frame["type"] for frame in result.frames]
    assert kinds[0] == "ack" and kinds[-1] == "assistant_message" and result.frames[-1]["is_final"] is True
    assert result.frames[0]["message_id"] == result.message_id


async def test_tools_run_in_the_workspace_and_results_reach_the_model(gateway: Any, workspace: Path) -> None:
    (workspace / "main.py").write_text("print('hi')\n")
    gateway.upstream.reply_tool_calls(("read_file", {"path": "main.py"}))
    gateway.upstream.reply_tool_calls(("write_file", {"path": "out/notes.md", "content": "# notes\n"}))
    gateway.upstream.reply_text("Done: main.py prints hi.")
    recorder = Recorder()
    approvals: list[str] = []

    async def approver(call: ToolCall) -> Decision:
        approvals.append(call.tool_name)
        return Decision(True)

    async with AgentSession(gateway.ws_url, ToolExecutor(workspace), approver, listener=recorder) as session:
        result = await session.run_turn("what does main.py do? then write notes", timeout=10)
    assert result.ok, result.errors
    assert result.text == "Done: main.py prints hi."
    assert [call.tool_name for call in recorder.calls] == ["read_file", "write_file"]
    assert approvals == ["write_file"]
    assert (workspace / "out/notes.md").read_text() == "# notes\n"
    requests = gateway.upstream.requests
    assert "print('hi')" in tool_messages(requests[1])[0]
    assert "bytes_written" in tool_messages(requests[2])[-1]


async def test_a_rejected_call_does_not_run_and_the_model_hears_why(gateway: Any, workspace: Path) -> None:
    gateway.upstream.reply_tool_calls(("run_command", {"command": "touch pwned"}))
    gateway.upstream.reply_text("Understood, I will not run it.")
    recorder = Recorder()
    executor = ToolExecutor(workspace)
    async with AgentSession(gateway.ws_url, executor, reject_all("not today"), listener=recorder) as session:
        result = await session.run_turn("clean up", timeout=10)
    assert result.ok
    assert not (workspace / "pwned").exists()
    assert recorder.results == [("run_command", None, "rejected by the user")]
    told = orjson.loads(tool_messages(gateway.upstream.requests[1])[0])
    assert told["rejected_by_user"] is True and told["user_feedback"] == "not today"
    assert [f["decision"] for f in result.frames if f["type"] == "approval_recorded"] == ["reject"]


async def test_prompt_user_without_a_human_answers_with_an_error(gateway: Any, workspace: Path) -> None:
    gateway.upstream.reply_tool_calls(("prompt_user", {"question": "Which file?"}))
    gateway.upstream.reply_text("I will guess.")
    async with AgentSession(gateway.ws_url, ToolExecutor(workspace), approve_all) as session:
        result = await session.run_turn("fix it", timeout=10)
    assert result.ok
    assert "no user to ask" in tool_messages(gateway.upstream.requests[1])[0]


async def test_a_model_failure_ends_the_turn_with_an_error(gateway: Any, workspace: Path) -> None:
    gateway.upstream.reply_error(400, "bad request upstream")
    async with AgentSession(gateway.ws_url, ToolExecutor(workspace), approve_all) as session:
        result = await session.run_turn("hi", timeout=10)
    assert result.status is TurnStatus.FAILED and not result.ok and result.stop_reason == "error"
    assert result.errors and result.errors[-1]["code"] == "LLM_ERROR"
    assert result.frames[-1]["is_final"] is True, "the turn ends at its final frame, after the error"


async def test_a_drop_mid_answer_resumes_with_last_seq_and_gets_exactly_the_missing_frames(
    gateway: Any, workspace: Path
) -> None:
    answer = "one two three four five six seven eight nine ten"
    gateway.upstream.reply_text(answer, chunk_delay=0.02)

    class DropOnFirstDelta(Recorder):
        session: AgentSession | None = None
        after_reconnect: list[int]

        def on_frame(self, frame: dict[str, Any]) -> None:
            if self.reconnects:
                self.after_reconnect.append(frame["seq"])

        def on_delta(self, text: str) -> None:
            super().on_delta(text)
            if len(self.deltas) == 1 and self.session is not None:
                self.session.drop_connection()

    recorder = DropOnFirstDelta()
    recorder.after_reconnect = []
    session = AgentSession(gateway.ws_url, ToolExecutor(workspace), approve_all, listener=recorder)
    recorder.session = session
    async with session:
        result = await session.run_turn("count", timeout=10)
    assert result.ok, result.errors
    assert result.text == answer
    assert recorder.reconnects == 1 and session.duplicates == 0
    seqs = [frame["seq"] for frame in result.frames]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "every frame once, in order"
    resumed_after = int(session.connections[1].rsplit("&last_seq=", 1)[1])
    assert "last_seq" not in session.connections[0]
    assert recorder.after_reconnect and recorder.after_reconnect[0] == resumed_after + 1


async def test_a_tool_result_lost_with_the_connection_is_sent_again(gateway: Any, workspace: Path) -> None:
    (workspace / "a.txt").write_text("alpha\n")
    gateway.upstream.reply_tool_calls(("read_file", {"path": "a.txt"}))
    gateway.upstream.reply_text("It says alpha.")

    class DropOnce(Recorder):
        session: AgentSession | None = None

        def on_tool_result(self, call: ToolCall, result: dict[str, Any] | None, error: str | None) -> None:
            super().on_tool_result(call, result, error)
            assert self.session is not None
            self.session.drop_connection()

    recorder = DropOnce()
    session = AgentSession(gateway.ws_url, ToolExecutor(workspace), approve_all, listener=recorder)
    recorder.session = session
    async with session:
        result = await session.run_turn("read a.txt", timeout=10)
    assert result.ok, result.errors
    assert result.text == "It says alpha."
    assert recorder.reconnects == 1
    assert "alpha" in tool_messages(gateway.upstream.requests[1])[0]


async def test_a_session_taken_over_by_another_client_is_closed(gateway: Any, workspace: Path) -> None:
    gateway.upstream.reply_text("first")
    async with AgentSession(gateway.ws_url, ToolExecutor(workspace), approve_all, session_id="shared-1") as session:
        assert (await session.run_turn("one", timeout=10)).ok
        async with gateway.connect("shared-1"):
            with pytest.raises(SessionClosed, match="4000"):
                await session.run_turn("two", timeout=10)


async def test_an_unreachable_gateway_is_a_clear_error(workspace: Path) -> None:
    from codelab_common.testing import free_port

    session = AgentSession(f"ws://127.0.0.1:{free_port()}", ToolExecutor(workspace), approve_all)
    with pytest.raises(SessionClosed, match="cannot connect"):
        await session.connect()


async def test_cancel_while_streaming_ends_the_turn_cancelled_and_the_next_message_works(
    gateway: Any, workspace: Path
) -> None:
    answer = "word " * 200
    gateway.upstream.reply_text(answer, chunk_delay=0.02)
    gateway.upstream.reply_text("The second answer.")
    cancels: list[asyncio.Task[None]] = []

    class CancelOnFirstDelta(Recorder):
        session: AgentSession | None = None

        def on_delta(self, text: str) -> None:
            super().on_delta(text)
            if len(self.deltas) == 1 and self.session is not None:
                cancels.append(asyncio.ensure_future(self.session.cancel()))

    recorder = CancelOnFirstDelta()
    session = AgentSession(gateway.ws_url, ToolExecutor(workspace), approve_all, listener=recorder)
    recorder.session = session
    async with session:
        result = await session.run_turn("count to two hundred", timeout=10)
        assert result.status is TurnStatus.CANCELLED and result.stop_reason == "cancelled", result.errors
        assert result.frames[-1]["is_final"] is True and len(result.text) < len(answer)
        await eventually(lambda: gateway.upstream.streams_cut >= 1)
        assert gateway.upstream.streams_cut >= 1, "the model's stream was closed"

        second = await session.run_turn("and now?", timeout=10)
    assert second.ok, second.errors
    assert second.text == "The second answer."
    assert cancels[0].done() and cancels[0].exception() is None


async def test_a_fresh_session_on_an_existing_id_answers_the_new_question(
    gateway: Any, agent_runtime: Any, workspace: Path
) -> None:
    """An earlier client left while its turn ran on; a new `codelab chat --session X` asks something else."""
    gateway.upstream.reply_text("the first answer, " * 40, chunk_delay=0.02)
    gateway.upstream.reply_text("The second answer.")
    async with gateway.connect("fresh-1", query="tools=read_file") as earlier:
        await earlier.say("first question", message_id="m-first")
        assert (await earlier.recv())["type"] == "ack"
        assert (await earlier.recv())["type"] == "assistant_message"

    recorder = Recorder()
    executor = ToolExecutor(workspace)
    async with AgentSession(gateway.ws_url, executor, approve_all, session_id="fresh-1", listener=recorder) as session:
        with pytest.raises(MessageRefused) as refused:
            await session.run_turn("second question", timeout=10)
        assert refused.value.code == "BUSY"
        await agent_runtime.wait_until_idle("fresh-1", timeout=10)
        result = await session.run_turn("second question", timeout=10)
    assert result.ok, result.errors
    assert result.text == "The second answer."
    assert "".join(recorder.deltas) == "The second answer.", "nothing of the earlier turn is shown"
    assert {frame.get("message_id") for frame in result.frames} == {result.message_id}


async def test_the_idle_connection_keeps_answering_the_gateway_s_pings(agent_runtime: Any, workspace: Path) -> None:
    """The gateway pings every 0.2 s and closes a connection whose pong is late; the client sits at its prompt
    (reads nothing) while frames of a turn started by an earlier client keep arriving."""
    from codelab_gateway.core.config import Settings
    from codelab_gateway.main import create_app
    from tests.fixtures.gateway import GATEWAY_TEST_KEY

    settings = Settings(
        internal_api_key=GATEWAY_TEST_KEY,
        agent_runtime_url=agent_runtime.url,
        agent_runtime_api_key=agent_runtime.api_key,
        log_json=False,
    )
    port = free_port()
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws_ping_interval=0.2)
    config.ws_ping_timeout = 0.5
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started)
        url = f"ws://127.0.0.1:{port}"
        agent_runtime.upstream.reply_text("x" * 400, chunk_size=1, chunk_delay=0.002)
        agent_runtime.upstream.reply_text("pong")
        async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws/idle-1?tools=") as earlier:
            await earlier.send_str('{"type": "user_message", "content": "stream a lot", "message_id": "m-1"}')
            await earlier.receive(timeout=5)
        recorder = Recorder()
        async with AgentSession(url, ToolExecutor(workspace), approve_all, session_id="idle-1", listener=recorder) as s:
            await asyncio.sleep(2.0)
            await agent_runtime.wait_until_idle("idle-1", timeout=10)
            result = await s.run_turn("ping?", timeout=10)
        assert result.ok and result.text == "pong"
        assert recorder.reconnects == 0 and len(s.connections) == 1
    finally:
        server.should_exit = True
        await serving


async def eventually(check: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)


async def test_the_client_sends_its_token_and_says_what_to_do_without_one(make_gateway: Any, workspace: Path) -> None:
    gateway = await make_gateway(client_auth="token", client_tokens="local:the-local-token-123")
    gateway.upstream.reply_text("authenticated")
    async with AgentSession(gateway.ws_url, ToolExecutor(workspace), approve_all, token="the-local-token-123") as s:
        result = await s.run_turn("hi", timeout=10)
    assert result.text == "authenticated"
    for token in (None, "a-wrong-token-456"):
        with pytest.raises(SessionClosed) as refused:
            async with AgentSession(gateway.ws_url, ToolExecutor(workspace), approve_all, token=token):
                pass
        message = str(refused.value)
        assert "refused the connection" in message and "(UNAUTHORIZED)" in message and "--token" in message
        assert "a-wrong-token-456" not in message
