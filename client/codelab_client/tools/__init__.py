"""The client-side tool executor: the tools the agent calls, run confined to a workspace folder."""

from codelab_client.tools.context import AskUser, ToolContext
from codelab_client.tools.errors import ToolError
from codelab_client.tools.executor import ToolExecutor, ToolOutcome
from codelab_client.tools.limits import Limits
from codelab_client.tools.registry import HANDLERS
from codelab_client.tools.workspace import Workspace

__all__ = ["HANDLERS", "AskUser", "Limits", "ToolContext", "ToolError", "ToolExecutor", "ToolOutcome", "Workspace"]
