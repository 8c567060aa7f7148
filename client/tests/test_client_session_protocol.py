"""The session's side of the wire protocol, against a scripted gateway: seq and resume, which frames answer a turn,
the gateway's own errors (no seq), cancel, and a tool still running when its turn or call ends."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from client.tests.fake_gateway import (
    FakeConnection,
    FakeGateway,
    ack,
    approval_recorded,
    delta,
    error,
    final,
    tool_call,
)
from codelab_client import session as session_module
from codelab_client.approvals import Decision, approve_all
from codelab_client.events import SessionListener
from codelab_client.oneshot import ExitCode, RunOptions, run_once
from codelab_client.session import AgentSession, MessageRefused, TurnStatus
from codelab_client.tools import ToolExecutor
from codelab_common.protocol import ToolCall


class Recorder(SessionListener):
    def __init__(self) -> None:
        self.deltas: list[str] = []
        self.errors: list[str] = []
        self.results: list[tuple[str, Any, str | None]] = []
        self.reconnects = 0

    def on_delta(self, text: str) -> None:
        self.deltas.append(text)

    def on_error(self, frame: dict[str, Any]) -> None:
        self.errors.append(frame["code"])

    def on_tool_result(self, call: ToolCall, result: dict[str, Any] | None, error: str | None) -> None:
        self.results.append((call.tool_name, result, error))

    def on_reconnected(self) -> None:
        self.reconnects += 1


@pytest.fixture
async def fake() -> AsyncIterator[FakeGateway]:
    async with FakeGateway().serve() as gateway:
        yield gateway


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return workspace


def open_session(fake: FakeGateway, folder: Path, **options: Any) -> AgentSession:
    options.setdefault("reconnect_delays", (0.05, 0.1, 0.2))
    return AgentSession(fake.url, ToolExecutor(folder), approve_all, **options)


async def start_turn(
    session: AgentSession, gateway: FakeConnection, content: str = "hi", **options: Any
) -> tuple[asyncio.Task[Any], str]:
    """Start `run_turn` in a task; returns it and the message_id of the user_message the gateway received."""
    task = asyncio.create_task(session.run_turn(content, **options))
    message = await gateway.recv()
    assert message["type"] == "user_message" and message["content"] == content
    return task, message["message_id"]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting for its parent to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def file_text(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


async def eventually(check: Callable[[], object], timeout: float = 5.0) -> None:
    """Wait until `check()` is true (at most `timeout` seconds; the caller asserts it after)."""
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)


async def wait_for_file(path: Path) -> str:
    await eventually(lambda: file_text(path))
    assert file_text(path), f"{path} was not written"
    return file_text(path)


async def test_only_frames_of_the_turn_answer_it_and_a_held_seq_is_dropped(fake: FakeGateway, folder: Path) -> None:
    """A session joined while an earlier turn's frames still arrive (a fresh `codelab chat --session X`)."""
    recorder = Recorder()
    async with open_session(fake, folder, listener=recorder) as session:
        gateway = await fake.accept()
        assert "last_seq" not in gateway.query
        await gateway.send(ack("m-old", 1), delta("m-old", 2, "the old answer"))
        task, message_id = await start_turn(session, gateway, "a new question")
        await gateway.send(
            delta("m-old", 2, "the old answer"),
            final("m-old", 3),
            ack(message_id, 4),
            delta(message_id, 5, "the new "),
            delta(message_id, 5, "the new "),
            delta(message_id, 6, "answer"),
            final(message_id, 7),
        )
        result = await asyncio.wait_for(task, 5)
    assert result.status is TurnStatus.COMPLETED and result.ok and result.stop_reason == "completed"
    assert result.text == "the new answer" and recorder.deltas == ["the new ", "answer"]
    assert [frame["seq"] for frame in result.frames] == [4, 5, 6, 7]
    assert session.duplicates == 2 and session.last_seq == 7


async def test_a_reconnect_resumes_after_the_last_seq_held(fake: FakeGateway, folder: Path) -> None:
    recorder = Recorder()
    async with open_session(fake, folder, listener=recorder) as session:
        first = await fake.accept()
        task, message_id = await start_turn(session, first)
        await first.send(ack(message_id, 10), delta(message_id, 11, "one "))
        await asyncio.sleep(0.1)
        first.drop()
        second = await fake.accept()
        assert second.query["last_seq"] == "11" and second.query["tools"]
        await second.send(delta(message_id, 11, "one "), delta(message_id, 12, "two"), final(message_id, 13))
        result = await asyncio.wait_for(task, 5)
    assert result.ok and result.text == "one two"
    assert recorder.reconnects == 1 and session.duplicates == 1


async def test_a_drop_before_any_seq_reconnects_without_last_seq(fake: FakeGateway, folder: Path) -> None:
    """The user_message went out and nothing of the session is held yet: the gateway starts the connection where
    that input left off (or at the running turn), so the whole log is not replayed; frames of other turns that do
    come are not taken as the answer."""
    async with open_session(fake, folder) as session:
        first = await fake.accept()
        task, message_id = await start_turn(session, first)
        first.drop()
        second = await fake.accept()
        assert "last_seq" not in second.query
        await second.send(ack("m-old", 1), final("m-old", 2), ack(message_id, 3), delta(message_id, 4, "ok"))
        await second.send(final(message_id, 5))
        result = await asyncio.wait_for(task, 5)
        await second.silent()  # the user message is not sent twice
    assert result.ok and result.text == "ok"


async def test_error_frames_with_seq_do_not_end_the_turn(fake: FakeGateway, folder: Path) -> None:
    recorder = Recorder()
    async with open_session(fake, folder, listener=recorder) as session:
        gateway = await fake.accept()
        task, message_id = await start_turn(session, gateway)
        await gateway.send(
            ack(message_id, 1),
            error("STEP_LIMIT", "too many steps", 2, message_id=message_id),
            error("AGENT_DOWN", "agent-runtime is down; the session goes on when it is back"),
            delta(message_id, 3, "Stopped here."),
        )
        await asyncio.sleep(0.2)
        assert not task.done()
        await gateway.send(final(message_id, 4, "error"))
        result = await asyncio.wait_for(task, 5)
    assert result.status is TurnStatus.FAILED and result.stop_reason == "error" and not result.ok
    assert result.text == "Stopped here."
    assert [frame["code"] for frame in result.errors] == ["STEP_LIMIT", "AGENT_DOWN"] == recorder.errors


@pytest.mark.parametrize(
    "refusal",
    [
        pytest.param({"code": "BUSY", "with_id": True}, id="busy"),
        pytest.param({"code": "AGENT_DOWN", "with_id": True}, id="agent-down"),
        pytest.param({"code": "INVALID_FORMAT", "with_id": False}, id="invalid-format"),
    ],
)
async def test_an_error_without_seq_answering_the_message_refuses_it(
    fake: FakeGateway, folder: Path, refusal: dict[str, Any]
) -> None:
    recorder = Recorder()
    async with open_session(fake, folder, listener=recorder) as session:
        gateway = await fake.accept()
        task, message_id = await start_turn(session, gateway)
        await gateway.send(error("BUSY", "another message's answer", message_id="m-other"))
        ids = {"message_id": message_id} if refusal["with_id"] else {}
        await gateway.send(error(refusal["code"], "not taken", **ids))
        with pytest.raises(MessageRefused) as refused:
            await asyncio.wait_for(task, 5)
        assert refused.value.code == refusal["code"] and recorder.errors == [refusal["code"]]

        task, message_id = await start_turn(session, gateway, "again")
        await gateway.send(ack(message_id, 1), delta(message_id, 2, "fine"), final(message_id, 3))
        assert (await asyncio.wait_for(task, 5)).text == "fine"


async def test_cancel_names_the_turn_and_its_final_frame_kills_the_running_command(
    fake: FakeGateway, folder: Path
) -> None:
    recorder = Recorder()
    async with open_session(fake, folder, listener=recorder) as session:
        gateway = await fake.accept()
        task, message_id = await start_turn(session, gateway, "build it")
        command = "sleep 60 & echo $! > child.pid; wait"
        await gateway.send(
            ack(message_id, 1), tool_call(message_id, 2, "call_1", "run_command", {"command": command}, approval=True)
        )
        assert await gateway.recv() == {"type": "approval", "call_id": "call_1", "decision": "approve"}
        await gateway.send(approval_recorded(message_id, 3, "call_1", "run_command", {"command": command}))
        child = int(await wait_for_file(folder / "child.pid"))
        assert alive(child)
        await session.cancel()
        assert await gateway.recv() == {"type": "cancel", "message_id": message_id}
        await gateway.send(final(message_id, 4, "cancelled"))
        result = await asyncio.wait_for(task, 10)
        assert result.status is TurnStatus.CANCELLED and result.stop_reason == "cancelled"
        await eventually(lambda: not alive(child), 3)
        assert not alive(child), "the command's process group outlived the cancelled turn"
        assert recorder.results == []
        await gateway.silent()  # no tool_result for the stopped call


async def test_an_approved_call_runs_only_once_recorded_and_with_the_recorded_arguments(
    fake: FakeGateway, folder: Path
) -> None:
    async with open_session(fake, folder) as session:
        gateway = await fake.accept()
        task, message_id = await start_turn(session, gateway, "note it")
        asked = {"path": "asked.txt", "content": "x"}
        await gateway.send(ack(message_id, 1), tool_call(message_id, 2, "call_1", "write_file", asked, approval=True))
        assert (await gateway.recv())["type"] == "approval"
        await gateway.silent()  # nothing runs before the decision is recorded
        assert not (folder / "asked.txt").exists()
        await gateway.send(error("BUSY", "busy", call_id="call_1"))
        assert (await gateway.recv())["decision"] == "approve", "a refusal for now: the same decision, again"
        recorded = {"path": "edited.txt", "content": "y"}
        await gateway.send(approval_recorded(message_id, 3, "call_1", "write_file", recorded))
        result = await gateway.recv()
        assert result["type"] == "tool_result" and result["call_id"] == "call_1" and "error" not in result
        assert (folder / "edited.txt").read_text() == "y\n" and not (folder / "asked.txt").exists()
        await gateway.send(final(message_id, 4))
        assert (await asyncio.wait_for(task, 10)).status is TurnStatus.COMPLETED


async def test_the_recorded_arguments_run_even_when_the_user_emptied_them(fake: FakeGateway, folder: Path) -> None:
    (folder / "sub").mkdir()
    (folder / "sub" / "inner.txt").write_text("x")
    async with open_session(fake, folder) as session:
        gateway = await fake.accept()
        task, message_id = await start_turn(session, gateway, "list")
        await gateway.send(
            ack(message_id, 1),
            tool_call(message_id, 2, "call_1", "list_files", {"path": "sub"}, approval=True),
        )
        assert (await gateway.recv())["type"] == "approval"
        await gateway.send(approval_recorded(message_id, 3, "call_1", "list_files", {}))
        result = await gateway.recv()
        assert "inner.txt" not in str(result), "the edited call ran, not the one first asked"
        await gateway.send(final(message_id, 4))
        await asyncio.wait_for(task, 10)


async def test_a_replayed_decision_is_not_asked_again(fake: FakeGateway, folder: Path) -> None:
    asked: list[str] = []

    async def approver(call: ToolCall) -> Decision:
        asked.append(call.call_id)
        return Decision(True)

    async with AgentSession(fake.url, ToolExecutor(folder), approver) as session:
        gateway = await fake.accept()
        task, message_id = await start_turn(session, gateway, "note it")
        arguments = {"path": "a.txt", "content": "x"}
        await gateway.send(
            ack(message_id, 1),
            tool_call(message_id, 2, "call_1", "write_file", arguments, approval=True),
            approval_recorded(message_id, 3, "call_1", "write_file", arguments),
        )
        result = await gateway.recv()
        assert result["type"] == "tool_result" and asked == []
        await gateway.send(final(message_id, 4))
        await asyncio.wait_for(task, 10)


async def test_a_tool_timeout_stops_that_call_and_the_turn_goes_on(fake: FakeGateway, folder: Path) -> None:
    async with open_session(fake, folder) as session:
        gateway = await fake.accept()
        task, message_id = await start_turn(session, gateway)
        command = "echo $$ > shell.pid; sleep 60"
        await gateway.send(ack(message_id, 1), tool_call(message_id, 2, "call_1", "run_command", {"command": command}))
        shell = int(await wait_for_file(folder / "shell.pid"))
        await gateway.send(error("TOOL_TIMEOUT", "no result", 3, call_id="call_1", message_id=message_id))
        await gateway.send(delta(message_id, 4, "It timed out."), final(message_id, 5))
        result = await asyncio.wait_for(task, 10)
        assert result.status is TurnStatus.COMPLETED and result.text == "It timed out."
        assert not alive(shell)
        await gateway.silent()


async def test_a_caller_that_stops_waiting_cancels_the_turn(fake: FakeGateway, folder: Path) -> None:
    async with open_session(fake, folder) as session:
        gateway = await fake.accept()
        task, message_id = await start_turn(session, gateway, timeout=0.5)
        await gateway.send(ack(message_id, 1), delta(message_id, 2, "slow"))
        result = await asyncio.wait_for(task, 5)
        assert result.status is TurnStatus.TIMED_OUT and result.text == "slow"
        assert await gateway.recv() == {"type": "cancel", "message_id": message_id}


async def test_results_of_the_round_are_sent_again_after_a_reconnect(fake: FakeGateway, folder: Path) -> None:
    (folder / "a.txt").write_text("alpha\n")
    async with open_session(fake, folder) as session:
        first = await fake.accept()
        task, message_id = await start_turn(session, first)
        await first.send(ack(message_id, 1), tool_call(message_id, 2, "call_1", "read_file", {"path": "a.txt"}))
        sent = await first.recv()
        assert sent["type"] == "tool_result" and sent["call_id"] == "call_1"
        first.drop()
        second = await fake.accept()
        assert second.query["last_seq"] == "2"
        assert await second.recv() == sent
        await second.send(error("UNKNOWN_CALL_ID", "no call call_1 is waiting", call_id="call_1"))
        await second.send(delta(message_id, 3, "It says alpha."), final(message_id, 4))
        result = await asyncio.wait_for(task, 5)
    assert result.ok, result.errors
    assert result.text == "It says alpha."


async def test_a_result_the_gateway_could_not_pass_on_is_sent_again(
    fake: FakeGateway, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(session_module, "RESULT_RETRY_DELAYS_S", (0.05, 0.05))
    (folder / "a.txt").write_text("alpha\n")
    async with open_session(fake, folder) as session:
        gateway = await fake.accept()
        task, message_id = await start_turn(session, gateway)
        await gateway.send(ack(message_id, 1), tool_call(message_id, 2, "call_1", "read_file", {"path": "a.txt"}))
        sent = await gateway.recv()
        await gateway.send(error("AGENT_DOWN", "agent-runtime did not take it", call_id="call_1"))
        assert await gateway.recv() == sent
        await gateway.send(delta(message_id, 3, "alpha"), final(message_id, 4))
        result = await asyncio.wait_for(task, 5)
    assert result.status is TurnStatus.COMPLETED and [e["code"] for e in result.errors] == ["AGENT_DOWN"]


async def test_the_idle_connection_answers_pings_with_frames_unread(fake: FakeGateway, folder: Path) -> None:
    """At the chat prompt nothing reads the socket; frames of a turn run elsewhere may still arrive meanwhile."""
    async with open_session(fake, folder):
        gateway = await fake.accept()
        await gateway.send(*(delta("m-elsewhere", seq, "x" * 100) for seq in range(1, 201)))
        for _ in range(3):
            pong = await gateway.ws.ping()
            await asyncio.wait_for(pong, 2)
            await asyncio.sleep(0.05)


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        pytest.param("refused", ExitCode.ERROR_FRAME, id="refused"),
        pytest.param("cancelled", ExitCode.CANCELLED, id="cancelled"),
    ],
)
async def test_run_exit_codes_for_a_refused_message_and_a_cancelled_turn(
    fake: FakeGateway, folder: Path, answer: str, code: ExitCode
) -> None:
    out, err = io.StringIO(), io.StringIO()
    running = asyncio.create_task(
        run_once(RunOptions("hi", folder, fake.url), out=Console(file=out), err=Console(file=err, width=200))
    )
    gateway = await fake.accept()
    message_id = (await gateway.recv())["message_id"]
    if answer == "refused":
        await gateway.send(error("BUSY", "The agent is still working on this session", message_id=message_id))
    else:
        await gateway.send(ack(message_id, 1), delta(message_id, 2, "partial"), final(message_id, 3, "cancelled"))
    assert await asyncio.wait_for(running, 5) is code
    shown = err.getvalue()
    assert ("error BUSY: The agent is still working" in shown) is (answer == "refused")
    assert ("the turn was cancelled" in shown) is (answer == "cancelled")
