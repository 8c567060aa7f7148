"""Tool name → handler. Blocking file tools run in a worker thread so the WebSocket keeps its heartbeat."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from codelab_client.tools.apply_patch import apply_patch
from codelab_client.tools.apply_patch_review import apply_patch_review
from codelab_client.tools.context import ToolContext
from codelab_client.tools.create_directory import create_directory
from codelab_client.tools.edit_file import edit_file
from codelab_client.tools.git_diff import git_diff
from codelab_client.tools.list_files import list_files
from codelab_client.tools.prompt_user import prompt_user
from codelab_client.tools.read_file import read_file
from codelab_client.tools.run_command import run_command
from codelab_client.tools.search import search_in_project
from codelab_client.tools.write_file import write_file

Handler = Callable[[ToolContext, Mapping[str, Any]], Awaitable[dict[str, Any]]]
BlockingHandler = Callable[[ToolContext, Mapping[str, Any]], dict[str, Any]]


def _in_thread(handler: BlockingHandler) -> Handler:
    async def run(ctx: ToolContext, arguments: Mapping[str, Any]) -> dict[str, Any]:
        return await asyncio.to_thread(handler, ctx, arguments)

    run.__name__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


HANDLERS: dict[str, Handler] = {
    "read_file": _in_thread(read_file),
    "write_file": _in_thread(write_file),
    "edit_file": _in_thread(edit_file),
    "list_files": _in_thread(list_files),
    "search_in_project": _in_thread(search_in_project),
    "create_directory": _in_thread(create_directory),
    "git_diff": git_diff,
    "apply_patch": _in_thread(apply_patch),
    "apply_patch_review": apply_patch_review,
    "run_command": run_command,
    "prompt_user": prompt_user,
}
"""Keyed by the model-side names of codelab_common.protocol.tools; `git.diff` resolves to `git_diff`."""
