"""`write_file {path, content, create_dirs?, backup?}` → `{success, bytes_written, path, created, backup_path?}`.

Missing parent folders are created unless `create_dirs` is false (small models rarely pass it). A backup copy
(`NAME.backup.<ms>`, as the IDE names it) is made only when `backup` is true.

The file keeps its shape where the model's content would change it by accident:

- Final newline: models usually leave the last `\\n` out. Non-empty content that does not end with a newline
  gets one when the file is new or empty (text files end with a newline) or when the existing file ended with
  one; an existing file that did not end with a newline is written as given.
- Line endings: over an existing file whose lines mostly end with CRLF, the content's line endings become CRLF;
  over one whose lines end with LF, they become LF. A new file, or one without any newline, takes the content's
  own. `bytes_written` counts what was written.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

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
    if len(content) > ctx.limits.write_bytes:
        raise ToolError("content_too_large", f"content is over {ctx.limits.write_bytes} bytes")

    target = ctx.workspace.resolve(path)
    original: bytes | None = None
    mode = 0
    try:
        with ctx.workspace.open_file(target, path) as fh:
            shape: _Shape | None = _Shape.of(fh, ctx.limits.binary_probe_bytes)
            if backup:
                fh.seek(0)
                original = fh.read()
            mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
    except FileNotFoundError:
        shape = None
    existed = shape is not None
    data = _shaped(content, shape)
    if len(data) > ctx.limits.write_bytes:
        raise ToolError("content_too_large", f"content is {len(data)} bytes; the limit is {ctx.limits.write_bytes}")
    if not target.parent.is_dir():
        if not create_dirs:
            raise ToolError("directory_not_found", f"folder of {path} does not exist (pass create_dirs: true)")
        if target.parent.exists():
            raise ToolError("not_a_directory", f"a parent of {path} is a file")
        ctx.workspace.make_folders(target.parent, path)

    result: dict[str, Any] = {"success": True, "bytes_written": len(data), "path": ctx.workspace.relative(target)}
    if original is not None:
        copy = target.with_name(f"{target.name}.backup.{int(time.time() * 1000)}")
        atomic_write(ctx.workspace, copy, original, ctx.workspace.relative(copy), mode=mode)
        result["backup_path"] = ctx.workspace.relative(copy)
    atomic_write(ctx.workspace, target, data, path)
    result["created"] = not existed
    return result


@dataclass(frozen=True, slots=True)
class _Shape:
    """What an existing file's content says about its line endings."""

    empty: bool
    ends_with_newline: bool
    newline: str | None
    """`\\r\\n` or `\\n`; None for a file without any newline (or empty)."""

    @classmethod
    def of(cls, fh: BinaryIO, probe: int) -> _Shape:
        head = fh.read(probe)
        size = fh.seek(0, os.SEEK_END)
        if size > len(head):
            fh.seek(size - 1)
            last = fh.read(1)
        else:
            last = head[-1:]
        if b"\n" not in head:
            return cls(size == 0, last == b"\n", None)
        crlf = head.count(b"\r\n")
        return cls(size == 0, last == b"\n", "\r\n" if crlf * 2 >= head.count(b"\n") else "\n")


def _shaped(content: str, shape: _Shape | None) -> bytes:
    """The content as bytes, with the existing file's final newline and line endings (see the module docstring)."""
    newline = shape.newline if shape is not None else None
    if newline is not None:
        content = content.replace("\r\n", "\n")
        if newline == "\r\n":
            content = content.replace("\n", "\r\n")
    wants_newline = shape is None or shape.empty or shape.ends_with_newline
    if content and not content.endswith("\n") and wants_newline:
        content += newline or ("\r\n" if "\r\n" in content else "\n")
    return content.encode("utf-8", "surrogateescape")
