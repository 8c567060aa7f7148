"""`codelab chat`: an interactive conversation in the terminal, tools run in the workspace.

Ctrl-C during a turn asks the gateway to cancel it (the turn ends with its final frame, `cancelled`, and a tool still
running for it is stopped); a second Ctrl-C, or one at the prompt, quits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from codelab_client.approval_prompt import ConsoleApprover, ConsoleReviewer
from codelab_client.approvals import Decision
from codelab_client.render import ConsoleRenderer
from codelab_client.session import AgentSession, MessageRefused, SessionClosed
from codelab_client.terminal_input import read_line
from codelab_client.tools import ToolExecutor
from codelab_client.tools.context import HunkDecision, HunkView
from codelab_common.protocol import ToolCall

QUIT_COMMANDS = frozenset({"/quit", "/exit", "/q"})
HELP = (
    "Type a request and press Enter. Tools run inside the workspace; calls that change files or run commands "
    "ask first. Ctrl-C during a turn cancels it.\n/quit leaves (Ctrl-D too), /session shows the session id (resume "
    "later with --session), /cancel stops a turn still running in the session (e.g. one left by an earlier "
    "client), /model NAME asks for another model from the next turn on (/model alone: the deployment's default), "
    "/help."
)
INTERRUPTED = 130
"""Exit status after a second Ctrl-C during a turn, as after Ctrl-C at the prompt."""


async def chat(
    workspace: Path,
    url: str,
    session_id: str | None,
    console: Console | None = None,
    model: str | None = None,
    token: str | None = None,
) -> int:
    console = console or Console()
    renderer = ConsoleRenderer(console, activity=True)

    async def ask_user(question: str) -> str:
        renderer.idle()
        console.print(f"[bold magenta]agent asks:[/] {escape(question)}")
        answer = await _ask(console, "[bold]your answer>[/] ")
        return answer or ""

    reviewer = ConsoleReviewer(console)

    async def review(hunks: list[HunkView]) -> list[HunkDecision]:
        renderer.idle()
        return await reviewer(hunks)

    executor = ToolExecutor(workspace, ask_user=ask_user, review=review)
    approver = ConsoleApprover(console, executor.workspace)

    async def approve(call: ToolCall) -> Decision:
        renderer.idle()
        decision = await approver(call)
        if decision.approved:
            renderer.running(call)
        return decision

    try:
        async with AgentSession(
            url, executor, approve, session_id=session_id, listener=renderer, model=model, token=token
        ) as session:
            console.print(
                f"[bold]codelab chat[/] session [cyan]{escape(session.session_id)}[/], "
                f"workspace [cyan]{escape(str(executor.workspace.root))}[/]. /help for help, /quit to leave.",
                highlight=False,
            )
            while True:
                line = await _ask(console, "[bold green]you>[/] ")
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
                if text == "/model" or text.startswith("/model "):
                    session.model = text.removeprefix("/model").strip() or None
                    renderer.note(f"next turns use {session.model or 'the default model'}")
                    continue
                if text == "/cancel":
                    await session.cancel()
                    renderer.note("asked the agent to stop the turn running in this session")
                    continue
                if text.startswith("/") and " " not in text:
                    console.print(f"[yellow]unknown command {escape(text)}; /help lists them[/]")
                    continue
                renderer.thinking()
                try:
                    if not await run_turn(session, text, renderer):
                        return INTERRUPTED
                finally:
                    renderer.idle()
    except SessionClosed as exc:
        console.print(f"[bold red]codelab:[/] {escape(str(exc))}")
        return 3


async def run_turn(session: AgentSession, text: str, renderer: ConsoleRenderer) -> bool:
    """One turn. The first Ctrl-C sends `cancel` and the turn goes on to its final frame; the second stops waiting.
    False when the user quit that way."""
    turn = asyncio.ensure_future(session.run_turn(text))
    presses = 0
    cancels: set[asyncio.Task[None]] = set()

    async def cancel() -> None:
        with contextlib.suppress(SessionClosed):
            await session.cancel()

    def on_ctrl_c() -> None:
        nonlocal presses
        presses += 1
        if presses == 1 and not turn.done():
            renderer.note("cancelling the turn… (Ctrl-C again to quit)")
            task = asyncio.ensure_future(cancel())
            cancels.add(task)
            task.add_done_callback(cancels.discard)
        else:
            turn.cancel()

    with ctrl_c_calls(on_ctrl_c):
        try:
            await turn
        except MessageRefused:
            pass  # the renderer showed the gateway's error; the message was not taken
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if presses >= 2 and (current is None or current.cancelling() == 0):
                return False
            raise
    return True


@contextlib.contextmanager
def ctrl_c_calls(handler: Callable[[], None]) -> Iterator[None]:
    """While inside, SIGINT calls `handler` in the event loop instead of interrupting; the previous handler (asyncio
    turns Ctrl-C into KeyboardInterrupt) comes back after. Where the loop cannot take signals, nothing changes."""
    loop = asyncio.get_running_loop()
    previous = signal.getsignal(signal.SIGINT)
    installed = True
    try:
        loop.add_signal_handler(signal.SIGINT, handler)
    except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread
        installed = False
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGINT)
            if previous is not None:
                signal.signal(signal.SIGINT, previous)


async def _ask(console: Console, prompt: str) -> str | None:
    return await read_line(lambda: console.input(prompt), reprompt=lambda: console.print(prompt, end=""))
