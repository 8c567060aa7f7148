"""`create_directory {path, recursive?}` → `{success, path, created}`; an existing folder is a success.

Folders are made one at a time from the workspace root without following links (`Workspace.make_folders`), so a
folder swapped for a symlink leading out meanwhile cannot make it create a folder outside.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codelab_client.tools import args
from codelab_client.tools.context import ToolContext
from codelab_client.tools.errors import ToolError


def create_directory(ctx: ToolContext, arguments: Mapping[str, Any]) -> dict[str, Any]:
    path = args.string(arguments, "path")
    recursive = args.boolean(arguments, "recursive", True)
    target = ctx.workspace.resolve(path)
    relative = ctx.workspace.relative(target)
    if target.is_dir():
        return {"success": True, "path": relative, "created": False}
    if target.exists():
        raise ToolError("file_exists", f"{path} exists and is not a directory")
    if not recursive and not target.parent.is_dir():
        raise ToolError("directory_not_found", f"parent of {path} does not exist (pass recursive: true)")
    ctx.workspace.make_folders(target, path)
    return {"success": True, "path": relative, "created": True}
