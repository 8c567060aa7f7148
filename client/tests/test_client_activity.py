"""The activity line of `codelab chat` ("thinking… 7 s") on a terminal, and its absence everywhere else."""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import structlog
from rich.console import Console

from codelab_client import approval_prompt, chat
from codelab_client.oneshot import ExitCode, RunOptions, run_once
from codelab_client.render import ActivityLine, ConsoleRenderer, activity_label
from codelab_common.protocol import ToolCall

WIDTH = 120
QUIET_S = 0.35
"""How long a prompt is watched for redraws; the activity line redraws 10 times a second."""

_CONTROL = re.compile(r"\x1b\[(\??[0-9;]*)([A-Za-z])|(\r|\n)|([^\x1b\r\n])")


class TtyBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


def tty_console() -> tuple[Console, TtyBuffer]:
    out = TtyBuffer()
    return Console(file=out, width=WIDTH, force_terminal=True, force_interactive=True), out


def screen(output: str) -> list[str]:
    """What a terminal `WIDTH` wide shows after `output`: text, CR, LF, cursor up, erase line; styles ignored."""
    rows: list[list[str]] = [[]]
    row = col = 0
    for match in _CONTROL.finditer(output):
        params, command, newline, char = match.groups()
        if command == "A":
            row = max(0, row - int(params or 1))
        elif command == "K":
            rows[row] = [] if params == "2" else rows[row][:col]
        elif command is not None:
            assert command == "m" or (params == "?25" and command in "hl"), repr(match.group())
        elif newline == "\r":
            col = 0
        elif newline == "\n":
            row, col = row + 1, 0
        else:
            if col == WIDTH:
                row, col = row + 1, 0
                rows.append([])
            line = rows[row]
            line.extend(" " * (col - len(line) + 1))
            line[col] = char
            col += 1
        while len(rows) <= row:
            rows.append([])
    lines = ["".join(line).rstrip() for line in rows]
    while lines and not lines[-1]:
        lines.pop()
    return lines


@dataclass
class Keyboard:
    """Lines the user types at the prompts, echoed into `file` as a terminal echoes them."""

    typed: list[str] = field(default_factory=list)
    file: io.StringIO = field(default_factory=io.StringIO)
    watch: bool = False
    all_typed: asyncio.Event = field(default_factory=asyncio.Event)
    drawn_at_prompt: list[str] = field(default_factory=list)
    """Per prompt while `watch`, what was written during `QUIET_S` before its answer."""


@contextmanager
def quiet_services() -> Iterator[None]:
    """The services run in this process; their log lines (structlog and stdlib, whose handlers may point at streams
    an earlier test closed) would land on the console under test."""
    logging.disable(logging.CRITICAL)
    try:
        with structlog.testing.capture_logs():
            yield
    finally:
        logging.disable(logging.NOTSET)


@pytest.fixture
def keyboard(monkeypatch: pytest.MonkeyPatch) -> Iterator[Keyboard]:
    keys = Keyboard()
    answers: list[str] = []
    monkeypatch.setattr("builtins.input", lambda *_: answers.pop(0))

    async def read_line(read: Any, **_: Any) -> str | None:
        if not keys.typed:
            return None
        answers.append(keys.typed.pop(0))
        value: str = read()
        if keys.watch:
            shown = keys.file.getvalue()
            await asyncio.sleep(QUIET_S)
            keys.drawn_at_prompt.append(keys.file.getvalue()[len(shown) :])
        keys.file.write(value + "\n")
        if not keys.typed:
            keys.all_typed.set()
        return value

    monkeypatch.setattr(chat, "read_line", read_line)
    monkeypatch.setattr(approval_prompt, "read_line", read_line)
    yield keys


def script_a_turn(gateway: Any, workspace: Path) -> None:
    (workspace / "main.py").write_text("print('hi')\n")
    gateway.upstream.reply_tool_calls(("read_file", {"path": "main.py"}))
    gateway.upstream.reply_tool_calls(("write_file", {"path": "notes.md", "content": "# hi\n"}))
    gateway.upstream.reply_text("It prints hi; notes written.", delay=0.5)


async def test_on_a_tty_the_agent_s_activity_shows_until_the_first_token(
    gateway: Any, workspace: Path, keyboard: Keyboard
) -> None:
    script_a_turn(gateway, workspace)
    keyboard.typed += ["what does main.py do? write notes", "y", "/quit"]
    console, out = tty_console()
    keyboard.file, keyboard.watch = out, True
    with quiet_services():
        assert await chat.chat(workspace, gateway.ws_url, "chat-tty-1", console=console) == 0
    raw = out.getvalue()

    answer_at = raw.index("It prints hi; notes written.")
    read_at = raw.index("✓ 1 lines read")
    assert "running read_file main.py…" in raw[:read_at]
    assert "thinking…" in raw[raw.index("✓ 5 bytes written") : answer_at]
    assert "thinking" not in raw[answer_at:] and "\x1b[2K" not in raw[answer_at:]
    assert raw.rindex("\x1b[?25h") > raw.rindex("\x1b[?25l")
    assert keyboard.drawn_at_prompt == ["", "", ""], "nothing may be drawn over a prompt"

    script_a_turn(gateway, workspace)
    (workspace / "notes.md").unlink()
    keyboard.typed += ["what does main.py do? write notes", "y", "/quit"]
    plain_out = keyboard.file = io.StringIO()
    keyboard.watch = False
    plain = Console(file=plain_out, width=WIDTH)
    assert await chat.chat(workspace, gateway.ws_url, "chat-tty-2", console=plain) == 0
    transcript = plain_out.getvalue().replace("chat-tty-2", "chat-tty-1")
    assert "thinking" not in transcript and "running read_file" not in transcript
    assert screen(raw) == [line.rstrip() for line in transcript.rstrip("\n").split("\n")]


async def test_off_a_tty_chat_and_run_print_no_activity(gateway: Any, workspace: Path, keyboard: Keyboard) -> None:
    """A plain file, and FORCE_COLOR into a pipe (a terminal console on a file that is no TTY)."""
    script_a_turn(gateway, workspace)
    keyboard.typed += ["what does main.py do? write notes", "y", "/quit"]
    piped = keyboard.file = io.StringIO()
    console = Console(file=piped, width=WIDTH, force_terminal=True)
    assert await chat.chat(workspace, gateway.ws_url, None, console=console) == 0
    shown = piped.getvalue()
    assert "It prints hi; notes written." in shown
    assert "thinking" not in shown and "running" not in shown
    assert not re.search(r"\x1b\[(\?25|2K|\d*A)", shown)

    gateway.upstream.reply_tool_calls(("read_file", {"path": "main.py"}))
    gateway.upstream.reply_text("It prints hi.", delay=0.3)
    out, err = io.StringIO(), io.StringIO()
    code = await run_once(
        RunOptions("what is main.py?", workspace, gateway.ws_url),
        out=Console(file=out, width=WIDTH, force_terminal=True),
        err=Console(file=err, width=WIDTH, force_terminal=True),
    )
    assert code is ExitCode.OK
    assert out.getvalue() == "It prints hi.\n"
    assert "thinking" not in err.getvalue() and not re.search(r"\x1b\[(\?25|2K|\d*A)", err.getvalue())


async def test_the_line_goes_on_an_error_and_on_ctrl_c(gateway: Any, workspace: Path, keyboard: Keyboard) -> None:
    """Ctrl-C cancels the chat's task (asyncio.run does so on SIGINT)."""
    gateway.upstream.reply_error(400, "bad request upstream")
    gateway.upstream.reply_text("too late", delay=5)
    keyboard.typed += ["hi", "hi again"]
    console, out = tty_console()
    keyboard.file = out
    with quiet_services():
        task = asyncio.create_task(chat.chat(workspace, gateway.ws_url, "chat-tty-3", console=console))
        await asyncio.wait_for(keyboard.all_typed.wait(), 5)
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    raw = out.getvalue()
    assert raw.count("thinking…") >= 2
    lines = screen(raw)
    asked, answered = lines.index("you> hi"), lines.index("you> hi again")
    error = " ".join(lines[asked + 1 : answered])
    assert error.startswith("error LLM_ERROR: The model failed: llm-proxy answered 400:")
    assert error.endswith("bad request upstream") and answered == len(lines) - 1
    assert raw.rindex("\x1b[?25h") > raw.rindex("\x1b[?25l")


async def test_the_first_token_erases_the_line_and_prints_where_it_began() -> None:
    console, out = tty_console()
    renderer = ConsoleRenderer(console, activity=True)
    console.print("you> hi")
    renderer.thinking()
    await asyncio.sleep(0.25)
    for piece in ("Hel", "lo, ", "world\n", "bye"):
        renderer.on_delta(piece)
    renderer.on_final({})
    assert "thinking…" in out.getvalue()
    assert screen(out.getvalue()) == ["you> hi", "Hello, world", "bye"]


def test_the_line_counts_seconds_after_a_few_and_cuts_long_arguments() -> None:
    now = [100.0]
    line = ActivityLine(Console(file=io.StringIO()), clock=lambda: now[0])
    line.show("thinking")
    try:
        assert line.__rich__().plain.endswith(" thinking…")
        now[0] = 107.4
        line.show("thinking")
        assert line.__rich__().plain.endswith(" thinking… 7 s")
        line.show("running read_file a.py")
        assert line.__rich__().plain.endswith(" running read_file a.py…")
        line.show("running run_command pytest -q…")
        assert line.__rich__().plain.endswith(" running run_command pytest -q…")
    finally:
        line.hide()
    assert line.label is None

    def call(tool: str, **arguments: Any) -> ToolCall:
        return ToolCall(call_id="call_1", tool_name=tool, arguments=arguments, requires_approval=False)

    assert activity_label(call("run_command", command="pytest -q\necho done")) == "running run_command pytest -q…"
    long_query = call("search_in_project", query="x" * 80, path="src")
    assert activity_label(long_query) == f"running search_in_project {'x' * 48}…"
    assert activity_label(call("git.diff")) == "running git.diff"


def test_a_renderer_without_a_tty_never_starts_the_line() -> None:
    assert ConsoleRenderer(Console(file=io.StringIO(), force_terminal=True), activity=True).activity is None
    assert ConsoleRenderer(Console(file=TtyBuffer(), force_terminal=True, force_interactive=True)).activity is None
    assert ConsoleRenderer(tty_console()[0], activity=True).activity is not None


async def test_on_a_tty_the_plan_is_redrawn_in_place_and_kept_at_the_end() -> None:
    from codelab_common.protocol import PlanStatus, PlanUpdate

    console, out = tty_console()
    renderer = ConsoleRenderer(console, activity=True)
    console.print("you> fix it")
    renderer.thinking()
    steps = [
        {"id": "1", "text": "Read calc.py", "status": "running"},
        {"id": "2", "text": "Fix add", "status": "pending"},
    ]
    plan = PlanUpdate.model_validate({"plan_id": "p", "steps": steps, "current_step": "1"})
    renderer.on_plan(plan, {"type": "plan_update"})
    await asyncio.sleep(0.15)
    assert screen(out.getvalue())[1:4] == ["plan", "  ◐ Read calc.py", "  ○ Fix add"]
    plan.steps[0].status, plan.steps[1].status = PlanStatus.DONE, PlanStatus.RUNNING
    renderer.on_plan(plan, {"type": "plan_progress", "step_id": "1"})
    await asyncio.sleep(0.15)
    shown = screen(out.getvalue())
    assert shown[1:4] == ["plan", "  ✓ Read calc.py", "  ◐ Fix add"], "redrawn where it was"
    assert shown.count("plan") == 1
    renderer.on_delta("Fixed.\n")
    renderer.on_final({})
    assert screen(out.getvalue()) == ["you> fix it", "Fixed.", "plan", "  ✓ Read calc.py", "  ◐ Fix add"]
