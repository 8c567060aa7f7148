"""What every tool receives: the workspace, the caps, and a way to ask the human (when there is one)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from codelab_client.tools.limits import Limits
from codelab_client.tools.workspace import Workspace

AskUser = Callable[[str], Awaitable[str]]
"""Asks the human a question and returns the answer."""


@dataclass(frozen=True, slots=True)
class ToolContext:
    workspace: Workspace
    limits: Limits = field(default_factory=Limits)
    ask_user: AskUser | None = None
