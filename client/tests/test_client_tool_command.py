"""run_command: IDE result shape, working folder, output caps, timeouts that stop the whole process group."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

from codelab_client.tools import Limits, ToolExecutor


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_run_command_shape_and_working_folder(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "hello.txt").write_text("hi")
    outcome = await executor.execute("run_command", {"command": "ls; echo oops >&2; exit 3"})
    assert outcome.result is not None
    result = outcome.result
    assert set(result) == {"command", "exit_code", "stdout", "stderr", "duration_ms", "timed_out"}
    assert result["command"] == "ls; echo oops >&2; exit 3"
    assert result["exit_code"] == 3
    assert result["stdout"] == "hello.txt\n"
    assert result["stderr"] == "oops\n"
    assert result["timed_out"] is False
    assert isinstance(result["duration_ms"], int)


async def test_run_command_in_a_subfolder(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "sub").mkdir()
    outcome = await executor.execute("run_command", {"command": "pwd", "cwd": "sub"})
    assert outcome.result is not None
    assert outcome.result["stdout"].strip() == str(workspace / "sub")


async def test_run_command_caps_each_stream(workspace: Path) -> None:
    executor = ToolExecutor(workspace, limits=Limits(output_bytes=1000))
    code = "import sys; sys.stdout.write('o' * 300000); sys.stderr.write('e' * 10)"
    outcome = await executor.execute("run_command", {"command": f'{sys.executable} -c "{code}"'})
    assert outcome.result is not None
    assert outcome.result["exit_code"] == 0
    assert outcome.result["stdout"] == "o" * 1000 and outcome.result["stdout_truncated"] is True
    assert outcome.result["stderr"] == "e" * 10 and "stderr_truncated" not in outcome.result


async def test_run_command_timeout_kills_the_process_group(executor: ToolExecutor, workspace: Path) -> None:
    started = time.monotonic()
    outcome = await executor.execute(
        "run_command", {"command": "sleep 30 & echo $! > bg.pid; echo started; wait", "timeout": 1}
    )
    assert time.monotonic() - started < 5
    assert outcome.result is not None
    assert outcome.result["timed_out"] is True
    assert outcome.result["stdout"] == "started\n"
    assert outcome.result["exit_code"] != 0
    background = int((workspace / "bg.pid").read_text())
    for _ in range(60):
        if not _alive(background):
            break
        await asyncio.sleep(0.05)
    assert not _alive(background)


async def test_timeout_is_capped_by_the_limit(workspace: Path) -> None:
    executor = ToolExecutor(workspace, limits=Limits(command_timeout_max_s=1))
    started = time.monotonic()
    outcome = await executor.execute("run_command", {"command": "sleep 20", "timeout": 3600})
    assert outcome.result is not None and outcome.result["timed_out"] is True
    assert time.monotonic() - started < 5


async def test_a_background_child_holding_the_output_does_not_hang_the_call(executor: ToolExecutor) -> None:
    started = time.monotonic()
    outcome = await executor.execute("run_command", {"command": "sleep 30 & echo done"})
    assert outcome.result is not None
    assert outcome.result["exit_code"] == 0 and outcome.result["stdout"] == "done\n"
    assert outcome.result["timed_out"] is False
    assert time.monotonic() - started < 6


async def test_run_command_argument_errors(executor: ToolExecutor) -> None:
    blank = await executor.execute("run_command", {"command": "   "})
    assert blank.error is not None and blank.error.startswith("[invalid_arguments]")
    bad_timeout = await executor.execute("run_command", {"command": "ls", "timeout": 0})
    assert bad_timeout.error is not None and bad_timeout.error.startswith("[invalid_arguments]")
    no_folder = await executor.execute("run_command", {"command": "ls", "cwd": "missing"})
    assert no_folder.error is not None and no_folder.error.startswith("[directory_not_found]")
