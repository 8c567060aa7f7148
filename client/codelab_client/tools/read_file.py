"""`read_file {path, start_line?, end_line?}` → `{success, content, lines_read, truncated}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from codelab_client.tools import args
from codelab_client.tools.context import ToolContext
from codelab_client.tools.errors import ToolError, invalid_arguments
from codelab_client.tools.files import looks_binary


def read_file(ctx: ToolContext, arguments: Mapping[str, Any]) -> dict[str, Any]:
    path = args.string(arguments, "path")
    start = args.integer(arguments, "start_line", minimum=1) or 1
    end = args.integer(arguments, "end_line", minimum=1)
    if end is not None and end < start:
        raise invalid_arguments("end_line must not be before start_line")
    target = ctx.workspace.resolve(path)
    if target.is_dir():
        raise ToolError("is_a_directory", f"{path} is a directory; use list_files")
    try:
        opened = ctx.workspace.open_file(target, path)
    except FileNotFoundError:
        raise ToolError("file_not_found", f"File not found: {path}") from None

    cap = ctx.limits.read_bytes
    with opened as fh:
        if looks_binary(fh.read(ctx.limits.binary_probe_bytes)):
            raise ToolError("binary_file", f"{path} is a binary file")
        fh.seek(0)
        if _skip_lines(fh, start - 1) < start - 1:
            return {"success": True, "content": "", "lines_read": 0, "truncated": False}
        data = fh.read(cap + 1)

    over_cap = len(data) > cap
    lines = _split_lines(data[:cap])
    truncated = over_cap
    if end is not None and len(lines) > end - start + 1:
        lines = lines[: end - start + 1]
        truncated = False
    elif over_cap and len(lines) > 1 and not lines[-1].endswith(b"\n"):
        lines.pop()
    result: dict[str, Any] = {
        "success": True,
        "content": b"".join(lines).decode("utf-8", "replace"),
        "lines_read": len(lines),
        "truncated": truncated,
    }
    if truncated:
        result["next_start_line"] = start + len(lines)
    return result


def _skip_lines(fh: Any, count: int) -> int:
    """Skip `count` lines reading bounded chunks, so one huge line never loads whole."""
    skipped = 0
    while skipped < count:
        chunk = fh.readline(64 * 1024)
        if not chunk:
            break
        if chunk.endswith(b"\n"):
            skipped += 1
    return skipped


def _split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    out = [line + b"\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out
