"""Showing a session on the terminal (rich), or as JSON lines for scripts."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

import orjson
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.text import Text

from codelab_client.events import SessionListener
from codelab_common.protocol import PlanStatus, PlanStep, PlanUpdate, ToolCall
from codelab_common.protocol.tools import resolve

ARG_PREVIEW_CHARS = 60
ACTIVITY_ARG_CHARS = 48
ACTIVITY_ELAPSED_AFTER_S = 3.0
"""The activity line shows its seconds from then on ("thinking… 7 s")."""
ACTIVITY_ARG_KEYS = ("command", "query", "path", "pattern")


def short_arguments(arguments: dict[str, Any]) -> str:
    """`path=main.py content=<120 chars>`: enough to recognise a call on one line."""
    parts = []
    for key, value in arguments.items():
        if isinstance(value, str) and ("\n" in value or len(value) > ARG_PREVIEW_CHARS):
            shown = f"<{len(value)} chars>" if "\n" in value else value[:ARG_PREVIEW_CHARS] + "…"
        else:
            shown = value if isinstance(value, str) else orjson.dumps(value).decode()
        parts.append(f"{key}={shown}")
    return " ".join(parts)


def activity_label(call: ToolCall) -> str:
    """`running read_file src/main.py`: the tool and the argument that says what it works on, cut to one line."""
    for key in ACTIVITY_ARG_KEYS:
        value = call.arguments.get(key)
        if isinstance(value, str) and value.strip():
            lines = value.strip().splitlines()
            shown = lines[0][:ACTIVITY_ARG_CHARS]
            cut = len(lines) > 1 or len(lines[0]) > ACTIVITY_ARG_CHARS
            return f"running {call.tool_name} {shown}{'…' if cut else ''}"
    return f"running {call.tool_name}"


PLAN_MARKS = {
    PlanStatus.PENDING: ("○", "dim"),
    PlanStatus.RUNNING: ("◐", "cyan"),
    PlanStatus.DONE: ("✓", "green"),
    PlanStatus.ERROR: ("✗", "red"),
    PlanStatus.BLOCKED: ("■", "yellow"),
}


def plan_step_line(step: PlanStep, *, current: bool = False) -> Text:
    mark, style = PLAN_MARKS[step.status]
    line = Text.assemble((f"  {mark} ", style), (step.text, "bold" if current else ""))
    if step.result:
        line.append(f" — {step.result}", style="dim")
    return line


def plan_checklist(plan: PlanUpdate) -> Text:
    """The plan as a checklist: one line per step, its status as a mark, the step being worked on in bold."""
    lines = [Text("plan", style="bold magenta")]
    lines += [plan_step_line(step, current=step.id == plan.current_step) for step in plan.steps]
    return Text("\n").join(lines)


def is_tty(console: Console) -> bool:
    """Whether `console` is an interactive terminal that can redraw a line: a real TTY, not FORCE_COLOR into a pipe."""
    isatty = getattr(console.file, "isatty", None)
    try:
        return bool(console.is_interactive and isatty is not None and isatty())
    except ValueError:
        return False


class ActivityLine:
    """A spinner line under the output saying what the agent is doing ("thinking… 7 s").

    Drawn by rich's `Live` (transient): `hide()` erases it and leaves the cursor where the line began, so what is
    printed next lands exactly where it would have without it. Lines printed on the console while it is shown
    appear above it.
    """

    def __init__(self, console: Console, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.console = console
        self._clock = clock
        self._spinner = Spinner("dots")
        self._state = ("", 0.0)
        self._live: Live | None = None
        self.plan: Text | None = None
        """Shown above the spinner, redrawn in place as it changes."""

    @property
    def label(self) -> str | None:
        """What the line says now; None while hidden."""
        return self._state[0] if self._live is not None else None

    def show(self, label: str) -> None:
        """Show `label` (its seconds count from now unless it is already shown)."""
        changed = self.label != label
        if changed:
            self._state = (label, self._clock())
        if self._live is None:
            self._live = Live(self, console=self.console, refresh_per_second=10, transient=True)
            self._live.start(refresh=True)
        elif changed:
            self._live.refresh()

    def hide(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.stop()

    def refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def __rich__(self) -> RenderableType:
        line = self._line()
        return line if self.plan is None else Group(self.plan, line)

    def _line(self) -> Text:
        label, since = self._state
        elapsed = max(0.0, self._clock() - since)
        frames = self._spinner.frames
        frame = frames[int(elapsed * 1000 / self._spinner.interval) % len(frames)]
        seconds = f" {int(elapsed)} s" if elapsed >= ACTIVITY_ELAPSED_AFTER_S else ""
        text = f"{label.removesuffix('…')}…{seconds}"
        return Text.assemble((frame, "cyan"), " ", (text, "dim"), no_wrap=True, overflow="ellipsis")


def summarize_result(tool: str, result: dict[str, Any]) -> str:
    if "exit_code" in result:
        suffix = ", timed out" if result.get("timed_out") else ""
        return f"exit {result['exit_code']} in {result.get('duration_ms', 0)} ms{suffix}"
    for key, label in (
        ("lines_read", "lines read"),
        ("bytes_written", "bytes written"),
        ("total_count", "entries"),
        ("files_changed", "files changed"),
    ):
        if key in result:
            value = result[key]
            return f"{len(value) if isinstance(value, list) else value} {label}"
    if "diff" in result:
        return f"{len(result['diff'].splitlines())} diff lines"
    return "done"


class ConsoleRenderer(SessionListener):
    """The answer streams to `answer`; tool activity, errors and notices go to `info` (stderr for `run`).

    With `activity` and `answer` a TTY, an `ActivityLine` says what the agent is doing while no token streams:
    `thinking()` and `running()` show it, a token or `idle()` erases it. Otherwise both are no-ops and the output
    is the same as without them.
    """

    def __init__(self, answer: Console, info: Console | None = None, *, activity: bool = False) -> None:
        self.answer = answer
        self.info = info or answer
        self._mid_line = False
        self.activity = ActivityLine(answer) if activity and is_tty(answer) else None

    def _break_line(self) -> None:
        if self._mid_line:
            self.answer.print()
            self._mid_line = False

    def _show(self, label: str) -> None:
        if self.activity is not None:
            self._break_line()
            self.activity.show(label)

    def thinking(self) -> None:
        """The agent has the message or the tool results and no token has come yet."""
        self._show("thinking")

    def running(self, call: ToolCall) -> None:
        """`call` runs here now."""
        self._show(activity_label(call))

    def idle(self) -> None:
        """Nothing to show: a token streams, the user is asked something, or the turn is over."""
        if self.activity is not None:
            self.activity.hide()

    def on_delta(self, text: str) -> None:
        self.idle()
        self.answer.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        self._mid_line = not text.endswith("\n")

    def on_final(self, frame: dict[str, Any]) -> None:
        self.idle()
        self._break_line()
        if self.activity is not None and self.activity.plan is not None:
            self.info.print(self.activity.plan)  # where the plan ended, kept above the next prompt
            self.activity.plan = None
        if frame.get("stop_reason") == "cancelled":
            self.info.print("[yellow]the turn was cancelled[/]")

    def note(self, text: str) -> None:
        """A notice of the client's own (e.g. that a cancel was asked for), on a line of its own."""
        self._break_line()
        self.info.print(f"[yellow]{escape(text)}[/]", highlight=False)

    def on_tool_call(self, call: ToolCall) -> None:
        self._break_line()
        spec = resolve(call.tool_name)
        if call.requires_approval or (spec is not None and spec.name == "prompt_user"):
            self.idle()
        else:
            self.running(call)
        mark = " [yellow](needs approval)[/]" if call.requires_approval else ""
        args = escape(short_arguments(call.arguments))
        self.info.print(f"[cyan]⚙ {escape(call.tool_name)}[/] [dim]{args}[/]{mark}", highlight=False)

    def on_tool_result(self, call: ToolCall, result: dict[str, Any] | None, error: str | None) -> None:
        self.thinking()
        if error is not None:
            self.info.print(f"  [red]✗ {escape(error)}[/]", highlight=False)
        elif result is not None:
            self.info.print(f"  [green]✓ {escape(summarize_result(call.tool_name, result))}[/]", highlight=False)

    def on_error(self, frame: dict[str, Any]) -> None:
        """An error does not end the turn (its final frame does): the activity line stays, or says thinking."""
        self._break_line()
        if self.activity is not None and (self.activity.label is None or frame.get("code") == "TOOL_TIMEOUT"):
            self.thinking()  # after TOOL_TIMEOUT the call is stopped here and the model goes on
        text = frame.get("content") or frame.get("error") or ""
        self.info.print(f"[bold red]error {escape(str(frame.get('code', '')))}:[/] {escape(str(text))}")

    def on_plan(self, plan: PlanUpdate, frame: dict[str, Any]) -> None:
        """On a terminal the plan is redrawn in place above the activity line; elsewhere the whole plan is printed
        when it is made or changed, and one line per step that changes status."""
        if self.activity is not None:
            self.activity.plan = plan_checklist(plan)
            self.activity.refresh()
            return
        self._break_line()
        if frame.get("type") == "plan_update":
            self.info.print(plan_checklist(plan))
            return
        step = next((step for step in plan.steps if step.id == frame.get("step_id")), None)
        if step is not None:
            self.info.print(plan_step_line(step))

    def on_unknown(self, frame: dict[str, Any]) -> None:
        self.info.print(f"[dim]ignored frame: {escape(orjson.dumps(frame).decode()[:200])}[/]")

    def on_reconnecting(self, attempt: int, reason: str) -> None:
        self._break_line()
        self._show("reconnecting")
        self.info.print(f"[yellow]{escape(reason)}; reconnecting (attempt {attempt})…[/]")

    def on_reconnected(self) -> None:
        self.thinking()
        self.info.print("[yellow]reconnected; the session goes on[/]")


class JsonLinesPrinter(SessionListener):
    """Every received frame as one JSON line, exactly as the gateway sent it."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout

    def on_frame(self, frame: dict[str, Any]) -> None:
        self.out.write(orjson.dumps(frame).decode() + "\n")
        self.out.flush()
