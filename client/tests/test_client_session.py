"""The session logic against the real gateway → agent-runtime → llm-proxy chain, the model scripted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codelab_client.approvals import Decision, approve_all, reject_all
from codelab_client.events import SessionListener
from codelab_client.session import AgentSession, SessionClosed, TurnStatus
from codelab_client.tools import ToolExecutor
from codelab_common.protocol import ToolCall


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
    gateway.upstream.reply_text("Hello from the model, streamed in small pieces.")
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
    assert recorder.results == [("run_command", None, "Rejected by user: not today")]
    assert "Rejected by user: not today" in tool_messages(gateway.upstream.requests[1])[0]


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
    assert result.status is TurnStatus.FAILED and not result.ok
    assert result.errors and result.errors[-1]["code"] == "LLM_ERROR"


async def test_a_dropped_connection_mid_answer_reconnects_and_the_turn_completes(gateway: Any, workspace: Path) -> None:
    """Frames the gateway wrote into the dead socket before noticing are gone (no per-frame seq to resume from
    yet), so only the ends of the answer are certain."""
    answer = "one two three four five six seven eight nine ten"
    gateway.upstream.reply_text(answer, chunk_delay=0.02)

    class DropOnFirstDelta(Recorder):
        session: AgentSession | None = None

        def on_delta(self, text: str) -> None:
            super().on_delta(text)
            if len(self.deltas) == 1 and self.session is not None:
                self.session.drop_connection()

    recorder = DropOnFirstDelta()
    session = AgentSession(gateway.ws_url, ToolExecutor(workspace), approve_all, listener=recorder)
    recorder.session = session
    async with session:
        result = await session.run_turn("count", timeout=10)
    assert result.ok, result.errors
    assert result.text.startswith("one") and result.text.endswith("ten")
    assert len(result.text) <= len(answer)
    assert recorder.reconnects == 1


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
