"""`write_file {path, content, create_dirs?, backup?}` → `{success, bytes_written, path, created, backup_path?}`.

Missing parent folders are created unless `create_dirs` is false (small models rarely pass it). A backup copy
(`NAME.backup.<ms>`, as the IDE names it) is made only when `backup` is true.
"""

from __future__ import annotations

import shutil
import stat
import time
from collections.abc import Mapping
from typing import Any

from codelab_client.tools import args
from codelab_client.tools.context import ToolContext
from codelab_client.tools.errors import ToolError, invalid_arguments
from codelab_client.tools.files import atomic_write


def write_file(ctx: ToolContext, arguments: Mapping[str, Any]) -> dict[str, Any]:
    path = args.string(arguments, "path")
    if arguments.get("content") is None:
        raise invalid_arguments("missing required argument 'content'")
    content = args.string(arguments, "content", allow_empty=True)
    create_dirs = args.boolean(arguments, "create_dirs", True)
    backup = args.boolean(arguments, "backup", False)
    data = content.encode("utf-8", "surrogateescape")
    if len(data) > ctx.limits.write_bytes:
        raise ToolError("content_too_large", f"content is {len(data)} bytes; the limit is {ctx.limits.write_bytes}")

    target = ctx.workspace.resolve(path)
    existed = target.exists()
    if existed and not stat.S_ISREG(target.stat().st_mode):
        raise ToolError("not_a_file", f"{path} exists and is not a regular file")
    if not target.parent.is_dir():
        if not create_dirs:
            raise ToolError("directory_not_found", f"folder of {path} does not exist (pass create_dirs: true)")
        if target.parent.exists():
            raise ToolError("not_a_directory", f"a parent of {path} is a file")
        target.parent.mkdir(parents=True, exist_ok=True)

    result: dict[str, Any] = {"success": True, "bytes_written": len(data), "path": ctx.workspace.relative(target)}
    if backup and existed:
        copy = target.with_name(f"{target.name}.backup.{int(time.time() * 1000)}")
        shutil.copy2(target, copy)
        result["backup_path"] = ctx.workspace.relative(copy)
    atomic_write(target, data)
    result["created"] = not existed
    return result
