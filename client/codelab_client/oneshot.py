"""`codelab run`: one turn without a human; approvals come from a flag."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from codelab_client.approvals import approve_all, reject_all
from codelab_client.events import SessionListener
from codelab_client.render import ConsoleRenderer, JsonLinesPrinter
from codelab_client.session import AgentSession, MessageRefused, SessionClosed, TurnStatus
from codelab_client.tools import ToolExecutor

NO_APPROVE_REASON = "approvals are off (codelab run --no-approve)"


class ExitCode(IntEnum):
    OK = 0
    ERROR_FRAME = 1
    """The gateway sent an error frame (the turn failed, an error happened along the way, or the message was
    refused, e.g. BUSY while another turn runs in the session)."""
    CONNECTION = 3
    """The gateway could not be reached or closed the session."""
    TIMED_OUT = 4
    CANCELLED = 5
    """The turn was cancelled (by a `cancel` another client of the session sent)."""


@dataclass(frozen=True, slots=True)
class RunOptions:
    prompt: str
    workspace: Path
    url: str = "ws://127.0.0.1:8000"
    approve: bool = False
    json_lines: bool = False
    session_id: str | None = None
    timeout: float | None = 600.0
    model: str | None = None
    token: str | None = None


async def run_once(options: RunOptions, *, out: Console | None = None, err: Console | None = None) -> ExitCode:
    out = out or Console()
    err = err or Console(stderr=True)
    listener: SessionListener = JsonLinesPrinter(out.file) if options.json_lines else ConsoleRenderer(out, err)
    executor = ToolExecutor(options.workspace)
    approver = approve_all if options.approve else reject_all(NO_APPROVE_REASON)
    try:
        async with AgentSession(
            options.url,
            executor,
            approver,
            session_id=options.session_id,
            listener=listener,
            model=options.model,
            token=options.token,
        ) as session:
            result = await session.run_turn(options.prompt, timeout=options.timeout)
    except SessionClosed as exc:
        err.print(f"[bold red]codelab:[/] {escape(str(exc))}")
        return ExitCode.CONNECTION
    except MessageRefused:
        return ExitCode.ERROR_FRAME  # the listener showed the gateway's error
    if result.status is TurnStatus.TIMED_OUT:
        err.print(f"[bold red]codelab:[/] no complete answer within {options.timeout:g} s")
        return ExitCode.TIMED_OUT
    if result.status is TurnStatus.CANCELLED:
        return ExitCode.CANCELLED
    return ExitCode.OK if result.ok else ExitCode.ERROR_FRAME
