"""`list_files {path, recursive?, include_hidden?, pattern?}` → `{success, path, items, total_count, truncated}`.

Items are `{name, path, type, size}` with `type` one of `file`, `directory`, `symlink`, `other`; paths are
relative to the project root. Symlinked folders are listed but never entered, and `.git` is never entered.
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
            entries = sorted(os.scandir(current), key=lambda entry: entry.name)
        except PermissionError:
            continue
        for entry in entries:
            if not include_hidden and entry.name.startswith("."):
                continue
            kind, size = _kind_and_size(entry)
            if recursive and kind == "directory" and entry.name not in NEVER_ENTERED:
                pending.append(Path(entry.path))
            if pattern and not fnmatch.fnmatch(entry.name, pattern):
                continue
            if len(items) >= cap:
                truncated = True
                break
            items.append({"name": entry.name, "path": ctx.workspace.relative(entry.path), "type": kind, "size": size})
    return {
        "success": True,
        "path": ctx.workspace.relative(folder),
        "items": items,
        "total_count": len(items),
        "truncated": truncated,
    }


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
