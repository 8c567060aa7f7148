"""What every tool receives: the workspace, the caps, and ways to ask the human (when there is one)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from codelab_client.tools.limits import Limits
from codelab_client.tools.workspace import Workspace

AskUser = Callable[[str], Awaitable[str]]
"""Asks the human a question and returns the answer."""


@dataclass(frozen=True, slots=True)
class HunkView:
    id: str
    """`path#n`, n counting the file's hunks from 1."""
    path: str
    text: str
    """The hunk's lines as a diff writes them, without the `@@` header."""


@dataclass(frozen=True, slots=True)
class HunkDecision:
    id: str
    status: Literal["accepted", "rejected", "edited"]
    text: str | None = None
    """The edited hunk (status `edited`)."""
    reason: str | None = None
    """Why it was rejected (status `rejected`), for the model."""


ReviewHunks = Callable[[list[HunkView]], Awaitable[list[HunkDecision]]]
"""Shows the human a patch hunk by hunk and returns a decision for each."""


@dataclass(frozen=True, slots=True)
class ToolContext:
    workspace: Workspace
    limits: Limits = field(default_factory=Limits)
    ask_user: AskUser | None = None
    review: ReviewHunks | None = None
