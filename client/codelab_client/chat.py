"""`codelab chat`: an interactive conversation in the terminal, tools run in the workspace."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from codelab_client.approval_prompt import ConsoleApprover
from codelab_client.approvals import Decision
from codelab_client.render import ConsoleRenderer
from codelab_client.session import AgentSession, SessionClosed
from codelab_client.terminal_input import read_line
from codelab_client.tools import ToolExecutor
from codelab_common.protocol import ToolCall

QUIT_COMMANDS = frozenset({"/quit", "/exit", "/q"})
HELP = (
    "Type a request and press Enter. Tools run inside the workspace; calls that change files or run commands "
    "ask first.\n/quit leaves (Ctrl-D too), /session shows the session id (resume later with --session), /help."
)


async def chat(workspace: Path, url: str, session_id: str | None, console: Console | None = None) -> int:
    console = console or Console()
    renderer = ConsoleRenderer(console, activity=True)

    async def ask_user(question: str) -> str:
        renderer.idle()
        console.print(f"[bold magenta]agent asks:[/] {escape(question)}")
        answer = await read_line(lambda: console.input("[bold]your answer>[/] "))
        return answer or ""

    executor = ToolExecutor(workspace, ask_user=ask_user)
    approver = ConsoleApprover(console, executor.workspace)

    async def approve(call: ToolCall) -> Decision:
        renderer.idle()
        decision = await approver(call)
        if decision.approved:
            renderer.running(call)
        return decision

    try:
        async with AgentSession(url, executor, approve, session_id=session_id, listener=renderer) as session:
            console.print(
                f"[bold]codelab chat[/] session [cyan]{escape(session.session_id)}[/], "
                f"workspace [cyan]{escape(str(executor.workspace.root))}[/]. /help for help, /quit to leave.",
                highlight=False,
            )
            while True:
                line = await read_line(lambda: console.input("[bold green]you>[/] "))
                if line is None:
                    console.print()
                    return 0
                text = line.strip()
                if not text:
                    continue
                if text in QUIT_COMMANDS:
                    return 0
                if text == "/help":
                    console.print(HELP)
                    continue
                if text == "/session":
                    console.print(session.session_id)
                    continue
                if text.startswith("/") and " " not in text:
                    console.print(f"[yellow]unknown command {escape(text)}; /help lists them[/]")
                    continue
                renderer.thinking()
                try:
                    await session.run_turn(text)
                finally:
                    renderer.idle()
    except SessionClosed as exc:
        console.print(f"[bold red]codelab:[/] {escape(str(exc))}")
        return 3
