"""`codelab run` and `codelab chat` logic against the real gateway chain, the model scripted."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from rich.console import Console

from codelab_client import approval_prompt, chat
from codelab_client.oneshot import ExitCode, RunOptions, run_once
from codelab_common.testing import free_port


def consoles() -> tuple[Console, io.StringIO, Console, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Console(file=out, width=200), out, Console(file=err, width=200), err


def tool_messages(request: dict[str, Any]) -> list[str]:
    return [m["content"] for m in request["messages"] if m.get("role") == "tool"]


async def test_run_prints_the_answer_and_exits_0(gateway: Any, workspace: Path) -> None:
    (workspace / "main.py").write_text("print('hi')\n")
    gateway.upstream.reply_tool_calls(("read_file", {"path": "main.py"}))
    gateway.upstream.reply_text("It prints hi.")
    out_console, out, err_console, err = consoles()
    code = await run_once(RunOptions("what is main.py?", workspace, gateway.ws_url), out=out_console, err=err_console)
    assert code is ExitCode.OK
    assert out.getvalue() == "It prints hi.\n"
    assert "read_file" in err.getvalue() and "path=main.py" in err.getvalue()


async def test_run_json_prints_every_frame(gateway: Any, workspace: Path) -> None:
    gateway.upstream.reply_text("pong")
    out_console, out, err_console, _ = consoles()
    options = RunOptions("ping", workspace, gateway.ws_url, json_lines=True)
    assert await run_once(options, out=out_console, err=err_console) is ExitCode.OK
    frames = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert frames[0]["type"] == "ack"
    assert frames[-1]["type"] == "assistant_message" and frames[-1]["is_final"] is True
    assert "".join(frame["content"] for frame in frames[1:]) == "pong"


@pytest.mark.parametrize("approve", [True, False])
async def test_run_approvals_follow_the_flag(gateway: Any, workspace: Path, approve: bool) -> None:
    gateway.upstream.reply_tool_calls(("write_file", {"path": "new.txt", "content": "x\n"}))
    gateway.upstream.reply_text("ok")
    out_console, _, err_console, _ = consoles()
    options = RunOptions("write it", workspace, gateway.ws_url, approve=approve)
    assert await run_once(options, out=out_console, err=err_console) is ExitCode.OK
    assert (workspace / "new.txt").exists() is approve
    sent = tool_messages(gateway.upstream.requests[1])[0]
    assert ('"user_feedback":"approvals are off' in sent) is not approve


async def test_run_exit_codes_for_errors_timeouts_and_no_gateway(gateway: Any, workspace: Path) -> None:
    out_console, _, err_console, err = consoles()
    gateway.upstream.reply_error(400, "nope")
    failed = await run_once(RunOptions("x", workspace, gateway.ws_url), out=out_console, err=err_console)
    assert failed is ExitCode.ERROR_FRAME and "LLM_ERROR" in err.getvalue()

    gateway.upstream.reply_text("slow " * 40, chunk_delay=0.05)
    slow = RunOptions("x", workspace, gateway.ws_url, timeout=0.3)
    assert await run_once(slow, out=out_console, err=err_console) is ExitCode.TIMED_OUT

    nowhere = RunOptions("x", workspace, f"ws://127.0.0.1:{free_port()}")
    assert await run_once(nowhere, out=out_console, err=err_console) is ExitCode.CONNECTION
    assert "cannot connect" in err.getvalue()


@pytest.fixture
def keyboard(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Lines the 'user' types, in order (prompts and approval questions alike)."""
    typed: list[str] = []

    async def read_line(read: Any, **_: Any) -> str | None:
        return typed.pop(0) if typed else None

    monkeypatch.setattr(chat, "read_line", read_line)
    monkeypatch.setattr(approval_prompt, "read_line", read_line)
    yield typed


async def test_chat_asks_before_writing_and_sends_the_rejection_reason(
    gateway: Any, workspace: Path, keyboard: list[str]
) -> None:
    gateway.upstream.reply_tool_calls(("write_file", {"path": "notes.md", "content": "# hi\n"}))
    gateway.upstream.reply_text("Okay, leaving it.")
    gateway.upstream.reply_tool_calls(("write_file", {"path": "notes.md", "content": "# hi\n"}))
    gateway.upstream.reply_text("Written.")
    (workspace / "notes.md").write_text("# old\n")
    keyboard += ["write notes", "n", "not now", "write them anyway", "y", "/quit"]
    console, out, _, _ = consoles()
    assert await chat.chat(workspace, gateway.ws_url, "chat-test-1", console=console) == 0
    shown = out.getvalue()
    assert "write_file wants approval: overwrite notes.md" in shown
    assert "-# old" in shown and "+# hi" in shown
    assert "Okay, leaving it." in shown and "Written." in shown
    assert '"user_feedback":"not now"' in tool_messages(gateway.upstream.requests[1])[0]
    assert (workspace / "notes.md").read_text() == "# hi\n"
    assert keyboard == []


async def test_chat_answers_prompt_user_from_the_keyboard(gateway: Any, workspace: Path, keyboard: list[str]) -> None:
    gateway.upstream.reply_tool_calls(("prompt_user", {"question": "Which colour?"}))
    gateway.upstream.reply_text("Blue it is.")
    keyboard += ["paint it", "blue", "/quit"]
    console, out, _, _ = consoles()
    assert await chat.chat(workspace, gateway.ws_url, None, console=console) == 0
    assert "agent asks: Which colour?" in out.getvalue()
    assert '"answer":"blue"' in tool_messages(gateway.upstream.requests[1])[0].replace(" ", "")


async def test_run_shows_the_plan_and_each_step_as_it_changes(gateway: Any, workspace: Path) -> None:
    (workspace / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    planned = [
        {"id": "1", "text": "Read calc.py", "status": "running"},
        {"id": "2", "text": "Fix add", "status": "pending"},
    ]
    progressed = [{**planned[0], "status": "done", "result": "add subtracts"}, {**planned[1], "status": "running"}]
    gateway.upstream.reply_tool_calls(("update_plan", {"steps": planned}), ("read_file", {"path": "calc.py"}))
    gateway.upstream.reply_tool_calls(("update_plan", {"steps": progressed}))
    gateway.upstream.reply_text("add subtracts; it should add.")
    out_console, out, err_console, err = consoles()

    code = await run_once(RunOptions("fix add", workspace, gateway.ws_url), out=out_console, err=err_console)

    assert code is ExitCode.OK
    shown = err.getvalue()
    assert "plan\n  ○ Read calc.py" not in shown and "plan\n  ◐ Read calc.py\n  ○ Fix add" in shown
    assert "  ✓ Read calc.py — add subtracts\n  ◐ Fix add" in shown
    assert shown.index("◐ Read calc.py") < shown.index("⚙ read_file") < shown.index("✓ Read calc.py")
    assert out.getvalue().strip() == "add subtracts; it should add."


async def test_chat_reviews_a_patch_hunk_by_hunk_with_a_coloured_diff(
    gateway: Any, workspace: Path, keyboard: list[str]
) -> None:
    source = "".join(f"line {i}\n" for i in range(1, 31))
    (workspace / "f.txt").write_text(source)
    patch = (
        "--- a/f.txt\n+++ b/f.txt\n@@ -2,1 +2,1 @@\n-line 2\n+TWO\n"
        "@@ -12,1 +12,1 @@\n-line 12\n+TWELVE\n@@ -22,1 +22,1 @@\n-line 22\n+TWENTY-TWO\n"
    )
    gateway.upstream.reply_tool_calls(("apply_patch", {"patch": patch}))
    gateway.upstream.reply_text("Done.")
    keyboard += ["apply the patch", "a", "r", "keep twelve", "a", "/quit"]
    console, out, _, _ = consoles()

    assert await chat.chat(workspace, gateway.ws_url, None, console=console) == 0

    shown = out.getvalue()
    assert "f.txt: hunk 1 of 3" in shown and "f.txt: hunk 3 of 3" in shown and "+TWELVE" in shown
    assert (workspace / "f.txt").read_text() == source.replace("line 2\n", "TWO\n", 1).replace(
        "line 22\n", "TWENTY-TWO\n"
    )
    told = orjson.loads(tool_messages(gateway.upstream.requests[1])[0])
    assert told["hunks"][1] == {"id": "f.txt#2", "status": "rejected", "reason": "keep twelve"}
    assert keyboard == []
