"""Running a child process with a time limit and bounded output capture.

The child gets its own session (process group), so a timeout or a cancelled tool call stops the command and
everything it started, not just the shell. On Linux it also runs under `reaper.py`, which catches what leaves the
group (`setsid`, double forks, `nohup ... &`) and kills it when the command ends, so nothing a command started is
left running once the call returns. Output beyond the cap is read and dropped, so the child never blocks on a full
pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KILL_GRACE_S = 2.0
"""How long a stopped command gets between SIGTERM and SIGKILL (the reaper gives it `reaper.TERM_GRACE_S` of it,
then needs the rest to kill what is left)."""
PIPE_GRACE_S = 1.0
"""How long output is still read after the command ended, before background children holding it are killed."""

REAPER = Path(__file__).with_name("reaper.py")
"""Run by path, not imported: the wrapper process loads no more than the standard library."""
USE_REAPER = sys.platform == "linux" and bool(sys.executable) and os.path.isdir("/proc/self/task")
"""Elsewhere the process group is all there is; a command that leaves it is not followed."""

QUIET_ENV = {"PAGER": "cat", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0"}
"""Keeps commands from waiting on a pager or a password prompt nobody can answer."""


@dataclass(slots=True)
class Captured:
    data: bytearray
    truncated: bool = False

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@dataclass(slots=True)
class ProcessResult:
    exit_code: int
    stdout: Captured
    stderr: Captured
    duration_ms: int
    timed_out: bool


async def run_process(
    command: str | list[str], *, cwd: Path, timeout: float, max_output: int, shell: bool = False
) -> ProcessResult:
    started = time.monotonic()
    env = {**os.environ, **QUIET_ENV}
    common = {
        "cwd": cwd,
        "stdin": asyncio.subprocess.DEVNULL,
        "stdout": asyncio.subprocess.PIPE,
        "stderr": asyncio.subprocess.PIPE,
        "start_new_session": True,
        "env": env,
    }
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else command
    assert shell == isinstance(command, str), "a shell runs a string, anything else a list of arguments"
    if USE_REAPER:
        argv = [sys.executable, "-I", "-S", str(REAPER), *argv]
    proc = await asyncio.create_subprocess_exec(*argv, **common)  # type: ignore[arg-type]
    out, err = Captured(bytearray()), Captured(bytearray())
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        asyncio.create_task(_drain(proc.stdout, out, max_output)),
        asyncio.create_task(_drain(proc.stderr, err, max_output)),
    ]
    timed_out = False
    try:
        if not await _exited(proc, timeout):
            timed_out = True
            await _stop(proc)
        _, still_open = await asyncio.wait(readers, timeout=PIPE_GRACE_S)
        if still_open:
            _signal_group(proc.pid, signal.SIGKILL)
            await asyncio.wait(readers, timeout=PIPE_GRACE_S)
    finally:
        if proc.returncode is None:
            await _stop_even_if_cancelled(proc)
        for reader in readers:
            reader.cancel()
    return ProcessResult(
        exit_code=proc.returncode if proc.returncode is not None else -signal.SIGKILL,
        stdout=out,
        stderr=err,
        duration_ms=int((time.monotonic() - started) * 1000),
        timed_out=timed_out,
    )


async def _drain(stream: asyncio.StreamReader, sink: Captured, cap: int) -> None:
    while chunk := await stream.read(64 * 1024):
        room = cap - len(sink.data)
        if room > 0:
            sink.data += chunk[:room]
        if len(chunk) > max(room, 0):
            sink.truncated = True


async def _exited(proc: asyncio.subprocess.Process, timeout: float) -> bool:
    """Whether the process ends within `timeout`.

    Polls `returncode` because `Process.wait()` also waits for the pipes to close, which a background child
    (`server &`) can hold open long after the command itself finished.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while proc.returncode is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


async def _stop(proc: asyncio.subprocess.Process) -> None:
    _signal_group(proc.pid, signal.SIGTERM)
    if not await _exited(proc, KILL_GRACE_S):
        _signal_group(proc.pid, signal.SIGKILL)
        await _exited(proc, KILL_GRACE_S)


async def _stop_even_if_cancelled(proc: asyncio.subprocess.Process) -> None:
    """`_stop` to its end (SIGKILL after the grace) even when the caller is cancelled again meanwhile, as a
    cancelled turn's cleanup may be; the cancellation is raised after."""
    stopping = asyncio.ensure_future(_stop(proc))
    cancelled = False
    while not stopping.done():
        try:
            await asyncio.shield(stopping)
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
