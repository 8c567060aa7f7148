"""Asking the human before a call that requires approval: show what it would do, then yes / no (with what to do
instead) / edit / always (a rule for the rest of the session, proposed as narrow as the call, editable)."""

from __future__ import annotations

import asyncio
import difflib
import io
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.syntax import Syntax

from codelab_client.approvals import Decision
from codelab_client.render import short_arguments
from codelab_client.terminal_input import read_line
from codelab_client.tools import ToolError, Workspace
from codelab_client.tools.context import HunkDecision, HunkView
from codelab_client.tools.edit_file import edited_text
from codelab_common.protocol import ApprovalRule, ToolCall
from codelab_common.protocol.approvals import COMMAND_TOOLS, narrowest_rule

PREVIEW_LINES = 40


class ConsoleApprover:
    """Approver for `codelab chat`. "always" sends a rule the agent keeps for the session, so calls it covers no
    longer ask."""

    def __init__(self, console: Console, workspace: Workspace | None = None) -> None:
        self.console = console
        self.workspace = workspace
        """When given, a write_file over an existing file and an edit_file are shown as the file's diff."""

    async def __call__(self, call: ToolCall) -> Decision:
        self.console.print(self._preview(call))
        while True:
            answer = await self._ask(
                f"Allow [bold]{escape(call.tool_name)}[/]? [green]y[/]es / [red]n[/]o / [magenta]e[/]dit / "
                "[cyan]a[/]lways: "
            )
            choice = (answer or "n").strip().lower()
            if choice in ("y", "yes"):
                return Decision(True)
            if choice in ("a", "always"):
                rule = await self._rule(call)
                if rule is not None:
                    return Decision(True, remember=rule)
            elif choice in ("e", "edit"):
                arguments = await self._edit(call)
                if arguments is not None:
                    return Decision(True, arguments=arguments)
            elif choice in ("n", "no"):
                feedback = await self._ask("What should the agent do instead? (sent to the model): ")
                return Decision(False, (feedback or "").strip() or "the user declined")

    async def _rule(self, call: ToolCall) -> ApprovalRule | None:
        """The narrowest rule that covers the call, which the user may widen or narrow."""
        proposed = narrowest_rule(call.tool_name, call.arguments)
        condition = proposed.command or proposed.path
        if condition is None:
            self.console.print(f"Rule for this session: [bold]{escape(proposed.describe())}[/]")
            return proposed
        what = "command prefix" if proposed.command is not None else "path glob"
        self.console.print(f"Rule for this session: [bold]{escape(proposed.describe())}[/]")
        typed = ((await self._ask(f"Enter to keep it, or another {what}: ")) or "").strip()
        if not typed:
            return proposed
        try:
            if proposed.command is not None:
                return ApprovalRule(tool=proposed.tool, command=typed)
            return ApprovalRule(tool=proposed.tool, path=typed)
        except ValueError as exc:
            self.console.print(f"[red]Not a rule:[/] {escape(str(exc).splitlines()[-1])}")
            return None

    async def _edit(self, call: ToolCall) -> dict[str, Any] | None:
        """The call's arguments as the user changes them: the command line for a command, JSON otherwise."""
        if call.tool_name in COMMAND_TOOLS and isinstance(call.arguments.get("command"), str):
            typed = ((await self._ask("Command to run instead: ")) or "").strip()
            return {**call.arguments, "command": typed} if typed else None
        self.console.print(f"Arguments now: {escape(orjson.dumps(call.arguments).decode()[:2000])}")
        typed = ((await self._ask("Arguments as JSON (empty: keep them): ")) or "").strip()
        if not typed:
            return None
        try:
            edited = orjson.loads(typed)
        except orjson.JSONDecodeError as exc:
            self.console.print(f"[red]Not JSON:[/] {escape(str(exc))}")
            return None
        if not isinstance(edited, dict):
            self.console.print("[red]The arguments must be a JSON object.[/]")
            return None
        return edited

    async def _ask(self, prompt: str) -> str | None:
        console = self.console
        return await read_line(lambda: console.input(prompt), reprompt=lambda: console.print(prompt, end=""))

    def _preview(self, call: ToolCall) -> Panel:
        args = call.arguments
        title = f"{call.tool_name} wants approval"
        if call.tool_name == "write_file" and isinstance(args.get("content"), str):
            path = str(args.get("path", ""))
            current = self._current_text(path)
            if current is not None:
                diff = difflib.unified_diff(
                    current.splitlines(keepends=True),
                    args["content"].splitlines(keepends=True),
                    f"a/{path}",
                    f"b/{path}",
                )
                body = Syntax(_head("".join(diff) or "(no change)"), "diff")
                return Panel(body, title=f"{title}: overwrite {escape(path)}", border_style="yellow")
            body = Syntax(
                _head(args["content"]), Syntax.guess_lexer(path, args["content"]), line_numbers=True, word_wrap=True
            )
            return Panel(body, title=f"{title}: write {escape(path)}", border_style="yellow")
        if call.tool_name == "edit_file" and isinstance(args.get("old_text"), str):
            return self._edit_preview(call, title)
        if call.tool_name == "apply_patch" and isinstance(args.get("patch"), str):
            return Panel(Syntax(_head(args["patch"]), "diff"), title=title, border_style="yellow")
        if call.tool_name == "run_command" and isinstance(args.get("command"), str):
            return Panel(Syntax(args["command"], "bash"), title=f"{title}: run in the workspace", border_style="yellow")
        return Panel(escape(short_arguments(args)), title=title, border_style="yellow")

    def _edit_preview(self, call: ToolCall, title: str) -> Panel:
        """The file's diff as the edit would leave it; the edit's own error when it would fail."""
        path = str(call.arguments.get("path", ""))
        old, new = str(call.arguments.get("old_text") or ""), str(call.arguments.get("new_text") or "")
        current = self._current_text(path)
        if current is None:
            body = Syntax(_head(_diff(old, new, path)), "diff")
            return Panel(body, title=f"{title}: edit {escape(path)}", border_style="yellow")

        try:
            edited = edited_text(current, old, new, path)
        except ToolError as exc:
            failure = f"[red]This edit will fail:[/] {escape(str(exc))}"
            return Panel(failure, title=f"{title}: edit {escape(path)}", border_style="red")
        body = Syntax(_head(_diff(current, edited, path)), "diff")
        return Panel(body, title=f"{title}: edit {escape(path)}", border_style="yellow")

    def _current_text(self, path: str) -> str | None:
        """The file's text when it exists inside the workspace (a refused path or file is the tool's to report;
        it is opened like the tools open it, so a named pipe cannot block the prompt)."""
        if self.workspace is None:
            return None
        try:
            target = self.workspace.resolve(path)
            with io.TextIOWrapper(self.workspace.open_file(target, path), errors="replace") as text:
                return text.read()
        except (ToolError, OSError):
            return None


class ConsoleReviewer:
    """Reviews a patch hunk by hunk for `codelab chat`: each hunk as a coloured diff, then accept / reject (with a
    reason for the model) / edit (in `$EDITOR`) / accept or reject every hunk left."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def __call__(self, hunks: list[HunkView]) -> list[HunkDecision]:
        decisions: list[HunkDecision] = []
        rest: str | None = None
        for number, hunk in enumerate(hunks, start=1):
            if rest is not None:
                decisions.append(HunkDecision(hunk.id, "accepted" if rest == "accepted" else "rejected"))
                continue
            title = f"{escape(hunk.path)}: hunk {number} of {len(hunks)}"
            self.console.print(Panel(Syntax(_head(hunk.text), "diff"), title=title, border_style="yellow"))
            decision, for_the_rest = await self._decide(hunk)
            if for_the_rest:
                rest = decision.status
            decisions.append(decision)
        return decisions

    async def _decide(self, hunk: HunkView) -> tuple[HunkDecision, bool]:
        """The decision on `hunk`, and whether it goes for every hunk left too."""
        prompt = (
            "[green]a[/]ccept / [red]r[/]eject / [magenta]e[/]dit / accept [green]A[/]ll the rest / "
            "reject the re[red]S[/]t: "
        )
        while True:
            choice = ((await self._ask(prompt)) or "r").strip()
            if choice in ("A", "S"):
                return HunkDecision(hunk.id, "accepted" if choice == "A" else "rejected"), True
            choice = choice.lower()
            if choice in ("a", "accept", "y"):
                return HunkDecision(hunk.id, "accepted"), False
            if choice in ("r", "reject", "n"):
                reason = ((await self._ask("Why? (sent to the model): ")) or "").strip()
                return HunkDecision(hunk.id, "rejected", reason=reason or None), False
            if choice in ("e", "edit"):
                edited = await self._edit(hunk.text)
                if edited is not None:
                    return HunkDecision(hunk.id, "edited", text=edited), False

    async def _edit(self, text: str) -> str | None:
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if not editor:
            self.console.print("[yellow]set $EDITOR to edit a hunk[/]")
            return None
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "hunk.diff"
            path.write_text(text)
            done = await asyncio.to_thread(subprocess.run, [*shlex.split(editor), str(path)], check=False)
            edited = path.read_text()
        if done.returncode != 0 or edited == text:
            self.console.print("[yellow]the hunk was not changed[/]")
            return None
        return edited

    async def _ask(self, prompt: str) -> str | None:
        console = self.console
        return await read_line(lambda: console.input(prompt), reprompt=lambda: console.print(prompt, end=""))


def _diff(before: str, after: str, path: str) -> str:
    """A unified diff whose every line ends with a newline, also where a side has no final one."""
    lines = difflib.unified_diff(
        [line + "\n" for line in before.splitlines()],
        [line + "\n" for line in after.splitlines()],
        f"a/{path}",
        f"b/{path}",
        n=2,
    )
    return "".join(lines) or "(no change)"


def _head(text: str) -> str:
    lines = text.splitlines()
    if len(lines) <= PREVIEW_LINES:
        return text
    return "\n".join(lines[:PREVIEW_LINES]) + f"\n… {len(lines) - PREVIEW_LINES} more lines"


__all__ = ["ConsoleApprover", "ConsoleReviewer"]
