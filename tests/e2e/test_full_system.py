"""The full system as real processes, the terminal client doing the IDE's part, the model scripted.

`codelab up --no-model --models-file` starts llm-proxy, agent-runtime and gateway; llm-proxy's one model is a
FakeOpenAI served by this test, scripted to read a file, write it (approved by the client), run it, and answer.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from codelab_client.approvals import Decision
from codelab_client.session import AgentSession
from codelab_client.tools import ToolExecutor
from codelab_common.protocol import ToolCall
from codelab_common.testing import FakeOpenAI, serve_app, wait_for_health
from tests.e2e.system import RunningSystem, codelab_up

MODEL = "e2e-model"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI(model=MODEL)
    async with serve_app(fake.app) as url:
        fake.base_url = f"{url}/v1"
        yield fake


@pytest.fixture
async def system(upstream: FakeOpenAI, tmp_path: Path) -> AsyncIterator[RunningSystem]:
    models = {
        "models": [
            {
                "name": MODEL,
                "provider": "openai-compatible",
                "upstream_model": MODEL,
                "base_url": upstream.base_url,
                "context_window": 8192,
            }
        ]
    }
    models_file = tmp_path / "models.yaml"
    models_file.write_text(yaml.safe_dump(models))
    async with codelab_up(tmp_path, "--no-model", "--models-file", str(models_file), "--model", MODEL) as running:
        yield running


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "app.py").write_text("print('hello')\n")
    return folder


def tool_contents(request: dict[str, Any]) -> list[str]:
    return [message["content"] for message in request["messages"] if message.get("role") == "tool"]


async def test_a_multi_step_turn_through_every_service(
    system: RunningSystem, upstream: FakeOpenAI, workspace: Path
) -> None:
    new_source = "print('hello, e2e')\n"
    upstream.reply_tool_calls(("read_file", {"path": "app.py"}))
    upstream.reply_tool_calls(("write_file", {"path": "app.py", "content": new_source}))
    upstream.reply_tool_calls(("run_command", {"command": f'"{sys.executable}" app.py'}))
    upstream.reply_text("app.py now prints 'hello, e2e'.")
    approved: list[str] = []

    async def approver(call: ToolCall) -> Decision:
        approved.append(call.tool_name)
        return Decision(True)

    async with AgentSession(system.ws_url, ToolExecutor(workspace), approver) as session:
        result = await session.run_turn("Make app.py greet e2e and run it.", timeout=60)

    assert result.ok, (result.status, result.errors)
    assert (workspace / "app.py").read_text() == new_source
    assert result.text == "app.py now prints 'hello, e2e'."

    kinds = [frame["type"] for frame in result.frames]
    assert kinds[0] == "ack" and result.frames[0]["message_id"] == result.message_id
    assert result.frames[-1] == {**result.frames[-1], "type": "assistant_message", "is_final": True}
    calls = [(f["tool_name"], f["requires_approval"]) for f in result.tool_calls]
    context = [("list_files", False), ("read_file", False)]
    assert calls == [*context, ("read_file", False), ("write_file", True), ("run_command", True)]
    assert approved == ["write_file", "run_command"]

    requests = upstream.requests
    assert len(requests) == 4
    assert all(request["model"] == MODEL for request in requests)
    first_user = requests[0]["messages"][1]["content"]
    assert first_user.startswith("Files in the project:\napp.py\n\nContents of app.py:\n```\nprint('hello')\n```")
    assert "print('hello')" in tool_contents(requests[1])[-1]
    assert '"bytes_written"' in tool_contents(requests[2])[-1]
    ran = tool_contents(requests[3])[-1]
    assert "hello, e2e" in ran and '"exit_code":0' in ran.replace(" ", "")


async def test_codelab_run_command_and_clean_shutdown(
    system: RunningSystem, upstream: FakeOpenAI, workspace: Path
) -> None:
    upstream.reply_text("pong")
    ok = await _codelab_run(system, workspace, "ping", "--json")
    assert ok.returncode == 0, ok.stderr
    frames = [orjson.loads(line) for line in ok.stdout.splitlines()]
    assert frames[0]["type"] == "ack"
    assert "".join(f["content"] for f in frames if f["type"] == "assistant_message") == "pong"
    assert frames[-1]["type"] == "assistant_message" and frames[-1]["is_final"] is True

    upstream.reply_tool_calls(("write_file", {"path": "x.txt", "content": "no"}))
    upstream.reply_text("Fine, I did not write it.")
    refused = await _codelab_run(system, workspace, "write x.txt")
    assert refused.returncode == 0, refused.stderr
    assert refused.stdout.strip() == "Fine, I did not write it."
    assert not (workspace / "x.txt").exists()
    assert '"user_feedback":"approvals are off' in tool_contents(upstream.requests[-1])[-1]

    upstream.reply_error(400, "the upstream refused")
    failed = await _codelab_run(system, workspace, "fail please")
    assert failed.returncode == 1
    assert "LLM_ERROR" in failed.stderr

    assert await system.stop() == 0
    for port in system.ports.values():
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listening after codelab up ended"


class _Completed:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


async def _codelab_run(system: RunningSystem, workspace: Path, prompt: str, *flags: str) -> _Completed:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "codelab_client",
        "run",
        prompt,
        "--workspace",
        str(workspace),
        "--url",
        system.ws_url,
        "--timeout",
        "30",
        *flags,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return _Completed(process.returncode, out.decode(), err.decode())


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGKILL])
async def test_services_go_with_their_launcher_when_its_terminal_closes_or_it_is_killed(
    system: RunningSystem, sig: signal.Signals
) -> None:
    system.process.send_signal(sig)
    await asyncio.wait_for(system.process.wait(), 30)

    for _ in range(75):
        listening = [port for port in system.ports.values() if _listening(port)]
        if not listening:
            break
        await asyncio.sleep(0.2)
    assert listening == [], f"ports {listening} still served 15 s after codelab up got {sig.name}"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_a_killed_service_is_restarted_and_the_session_carries_on(
    system: RunningSystem, upstream: FakeOpenAI, workspace: Path
) -> None:
    upstream.reply_text("before")
    assert (await _codelab_run(system, workspace, "hi", "--session", "kept")).returncode == 0

    os.kill(_child_pid(system.process.pid, "codelab_agent_runtime"), signal.SIGKILL)
    down = await _codelab_run(system, workspace, "are you there?", "--session", "kept")
    await wait_for_health(f"http://127.0.0.1:{system.ports['agent-runtime']}", timeout=30)
    upstream.reply_text("after")
    again = await _codelab_run(system, workspace, "and now?", "--session", "kept")

    assert down.returncode == 1 and "AGENT_DOWN" in down.stderr
    assert again.returncode == 0 and again.stdout.strip() == "after", again.stderr
    assert system.process.returncode is None, "codelab up kept running"
    history = [m["content"] for m in upstream.requests[-1]["messages"] if m["role"] in ("user", "assistant")]
    assert history[0].endswith("My request: hi") and history[1] == "before", "the history survived the restart"
    assert "restarting it in 1 s" in system.logs()


def _child_pid(parent: int, module: str) -> int:
    """The pid of `parent`'s child running `python -m module`."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent and module.encode() in cmdline:
            return int(proc.name)
    raise AssertionError(f"no child of {parent} runs {module}")
