"""`list_files {path, recursive?, include_hidden?, pattern?}` → `{success, path, items, total_count, truncated}`.

Items are `{name, path, type, size}` with `type` one of `file`, `directory`, `symlink`, `other`; paths are
relative to the project root. Symlinked folders are listed but never entered, and `.git` is never entered.
Named pipes, sockets and devices are listed as `other`; listing only reads the folder, it never opens them. Each
folder is read through a descriptor from `Workspace.open_folder` (reached from the root without following links),
so a folder swapped for a symlink leading out after it was listed is not entered either.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codelab_client.tools import args
from codelab_client.tools.context import ToolContext
from codelab_client.tools.errors import ToolError

NEVER_ENTERED = frozenset({".git", ".hg", ".svn"})


def list_files(ctx: ToolContext, arguments: Mapping[str, Any]) -> dict[str, Any]:
    path = args.string(arguments, "path", default=".") or "."
    recursive = args.boolean(arguments, "recursive", False)
    include_hidden = args.boolean(arguments, "include_hidden", False)
    pattern = arguments.get("pattern") or None
    if pattern is not None and not isinstance(pattern, str):
        raise ToolError("invalid_arguments", "argument 'pattern' must be a string")

    folder = ctx.workspace.resolve(path)
    if not folder.exists():
        raise ToolError("directory_not_found", f"Directory not found: {path}")
    if not folder.is_dir():
        raise ToolError("not_a_directory", f"{path} is not a directory; use read_file")

    items: list[dict[str, Any]] = []
    cap = ctx.limits.list_entries
    truncated = False
    pending = [folder]
    while pending and not truncated:
        current = pending.pop(0)
        try:
            entries = _entries(ctx, current)
        except PermissionError:
            continue
        except ToolError:
            if current == folder:
                raise
            continue  # it changed since it was listed
        for name, kind, size in entries:
            if not include_hidden and name.startswith("."):
                continue
            entry_path = current / name
            if recursive and kind == "directory" and name not in NEVER_ENTERED:
                pending.append(entry_path)
            if pattern and not fnmatch.fnmatch(name, pattern):
                continue
            if len(items) >= cap:
                truncated = True
                break
            items.append({"name": name, "path": ctx.workspace.relative(entry_path), "type": kind, "size": size})
    return {
        "success": True,
        "path": ctx.workspace.relative(folder),
        "items": items,
        "total_count": len(items),
        "truncated": truncated,
    }


def _entries(ctx: ToolContext, folder: Path) -> list[tuple[str, str, int]]:
    """Name, type and size of every entry of `folder`, sorted by name, read through its descriptor."""
    fd = ctx.workspace.open_folder(folder, ctx.workspace.relative(folder))
    try:
        with os.scandir(fd) as scan:
            return sorted((entry.name, *_kind_and_size(entry)) for entry in scan)
    finally:
        os.close(fd)


def _kind_and_size(entry: os.DirEntry[str]) -> tuple[str, int]:
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError:
        return "other", 0
    if stat.S_ISLNK(info.st_mode):
        return "symlink", 0
    if stat.S_ISDIR(info.st_mode):
        return "directory", 0
    if stat.S_ISREG(info.st_mode):
        return "file", info.st_size
    return "other", 0
