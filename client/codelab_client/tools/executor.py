"""The tool executor: runs a `tool_call` inside the workspace and returns what goes into the `tool_result`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codelab_client.tools.context import AskUser, ReviewHunks, ToolContext
from codelab_client.tools.errors import ToolError
from codelab_client.tools.limits import Limits
from codelab_client.tools.registry import HANDLERS
from codelab_client.tools.workspace import Workspace
from codelab_common.protocol.tools import resolve


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """Exactly one of `result` (the tool's JSON object) and `error` (`[code] message`) is set."""

    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ToolExecutor:
    """Runs the tools of codelab_common.protocol.tools confined to one workspace folder."""

    def __init__(
        self,
        workspace: str | os.PathLike[str],
        *,
        ask_user: AskUser | None = None,
        limits: Limits | None = None,
        review: ReviewHunks | None = None,
    ) -> None:
        self.context = ToolContext(Workspace(workspace), limits or Limits(), ask_user, review)

    @property
    def workspace(self) -> Workspace:
        return self.context.workspace

    @property
    def supported_tools(self) -> tuple[str, ...]:
        """Model-side names, the order of HANDLERS; what the client announces with `?tools=`. A review of a patch
        hunk by hunk needs someone to review it."""
        return tuple(name for name in HANDLERS if name != "apply_patch_review" or self.context.review is not None)

    async def execute(self, tool_name: str, arguments: Any) -> ToolOutcome:
        spec = resolve(tool_name)
        handler = HANDLERS.get(spec.name) if spec else None
        if handler is None:
            return ToolOutcome(error=str(ToolError("unsupported_tool", f"Unsupported tool: {tool_name}")))
        if not isinstance(arguments, Mapping):
            return ToolOutcome(error=str(ToolError("invalid_arguments", "arguments must be a JSON object")))
        try:
            return ToolOutcome(result=await handler(self.context, arguments))
        except ToolError as exc:
            return ToolOutcome(error=str(exc))
        except PermissionError as exc:
            return ToolOutcome(error=str(ToolError("permission_denied", exc.strerror or str(exc))))
        except OSError as exc:
            return ToolOutcome(error=str(ToolError("io_error", exc.strerror or str(exc))))
        except Exception as exc:  # a tool bug must not end the chat; the model gets the reason instead
            return ToolOutcome(error=str(ToolError("internal_error", f"{type(exc).__name__}: {exc}")))
