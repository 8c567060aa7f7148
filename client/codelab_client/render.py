"""Showing a session on the terminal (rich), or as JSON lines for scripts."""

from __future__ import annotations

import sys
from typing import IO, Any

import orjson
from rich.console import Console
from rich.markup import escape

from codelab_client.events import SessionListener
from codelab_common.protocol import ToolCall

ARG_PREVIEW_CHARS = 60


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
    """The answer streams to `answer`; tool activity, errors and notices go to `info` (stderr for `run`)."""

    def __init__(self, answer: Console, info: Console | None = None) -> None:
        self.answer = answer
        self.info = info or answer
        self._mid_line = False

    def _break_line(self) -> None:
        if self._mid_line:
            self.answer.print()
            self._mid_line = False

    def on_delta(self, text: str) -> None:
        self.answer.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        self._mid_line = not text.endswith("\n")

    def on_final(self, frame: dict[str, Any]) -> None:
        self._break_line()

    def on_tool_call(self, call: ToolCall) -> None:
        self._break_line()
        mark = " [yellow](needs approval)[/]" if call.requires_approval else ""
        args = escape(short_arguments(call.arguments))
        self.info.print(f"[cyan]⚙ {escape(call.tool_name)}[/] [dim]{args}[/]{mark}", highlight=False)

    def on_tool_result(self, call: ToolCall, result: dict[str, Any] | None, error: str | None) -> None:
        if error is not None:
            self.info.print(f"  [red]✗ {escape(error)}[/]", highlight=False)
        elif result is not None:
            self.info.print(f"  [green]✓ {escape(summarize_result(call.tool_name, result))}[/]", highlight=False)

    def on_error(self, frame: dict[str, Any]) -> None:
        self._break_line()
        text = frame.get("content") or frame.get("error") or ""
        self.info.print(f"[bold red]error {escape(str(frame.get('code', '')))}:[/] {escape(str(text))}")

    def on_unknown(self, frame: dict[str, Any]) -> None:
        self.info.print(f"[dim]ignored frame: {escape(orjson.dumps(frame).decode()[:200])}[/]")

    def on_reconnecting(self, attempt: int, reason: str) -> None:
        self._break_line()
        self.info.print(f"[yellow]{escape(reason)}; reconnecting (attempt {attempt})…[/]")

    def on_reconnected(self) -> None:
        self.info.print("[yellow]reconnected; the session goes on[/]")


class JsonLinesPrinter(SessionListener):
    """Every received frame as one JSON line, exactly as the gateway sent it."""

    def __init__(self, out: IO[str] | None = None) -> None:
        self.out = out or sys.stdout

    def on_frame(self, frame: dict[str, Any]) -> None:
        self.out.write(orjson.dumps(frame).decode() + "\n")
        self.out.flush()
