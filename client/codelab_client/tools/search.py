"""`search_in_project {query, path?}` → `{success, matches: [{path, line, text}], total_count, truncated}`.

A plain, case-sensitive substring search over the project's text files. Skipped: version-control and cache
folders, virtual environments and node_modules, symlinks (they may lead out of the workspace), binary files,
files over the size cap, and every file `Workspace.open_file` refuses: named pipes, sockets and devices (never
opened, so a pipe cannot block the search), files with several names, a file that changed while it was opened.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Generator, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from codelab_client.tools import args
from codelab_client.tools.context import ToolContext
from codelab_client.tools.errors import ToolError
from codelab_client.tools.files import looks_binary
from codelab_client.tools.workspace import Workspace

SKIPPED_FOLDERS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".dart_tool",
    }
)
MAX_QUERY_CHARS = 1000


def search_in_project(ctx: ToolContext, arguments: Mapping[str, Any]) -> dict[str, Any]:
    query = args.string(arguments, "query")
    if len(query) > MAX_QUERY_CHARS:
        raise ToolError("invalid_arguments", f"query is longer than {MAX_QUERY_CHARS} characters")
    if "\n" in query:
        raise ToolError("invalid_arguments", "query must be a single line")
    path = args.string(arguments, "path", default=".") or "."
    start = ctx.workspace.resolve(path)
    if not start.exists():
        raise ToolError("file_not_found", f"Not found: {path}")

    limits = ctx.limits
    matches: list[dict[str, Any]] = []
    truncated = False
    with contextlib.closing(_text_files(ctx.workspace, start)) as files:  # closing it closes its folder
        for shown, open_file in files:
            for number, text in _matching_lines(ctx, open_file, query):
                if len(matches) >= limits.search_matches:
                    truncated = True
                    break
                matches.append({"path": shown, "line": number, "text": text[: limits.search_line_chars]})
            if truncated:
                break
    return {"success": True, "matches": matches, "total_count": len(matches), "truncated": truncated}


def _text_files(workspace: Workspace, start: Path) -> Generator[tuple[str, Callable[[], BinaryIO]]]:
    """Every file to search under `start` (or `start` itself), as its path for the model and a way to open it.

    Folders are visited depth first in name order, each opened once through `Workspace.open_folder` and its files
    opened relative to it; only entries that are regular files (not symlinks) by their directory entry are
    yielded, so a named pipe or a device is never even stat'ed, let alone opened.
    """
    if not start.is_dir():
        yield workspace.relative(start), lambda: workspace.open_file(start, workspace.relative(start))
        return
    pending = [start]
    while pending:
        current = pending.pop()
        shown = workspace.relative(current)
        try:
            folder = workspace.open_folder(current, shown)
        except (OSError, ToolError):
            continue
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    path = f"{shown}/{entry.name}" if shown != "." else entry.name
                    yield path, partial(workspace.open_file_in, folder, entry.name, path)
            subfolders = [e.name for e in entries if e.is_dir(follow_symlinks=False) and e.name not in SKIPPED_FOLDERS]
            pending.extend(current / name for name in reversed(subfolders))
        except OSError:
            continue
        finally:
            os.close(folder)


def _matching_lines(ctx: ToolContext, open_file: Callable[[], BinaryIO], query: str) -> Iterator[tuple[int, str]]:
    max_bytes = ctx.limits.search_file_bytes
    try:
        with open_file() as fh:
            if os.fstat(fh.fileno()).st_size > max_bytes:
                return
            data = fh.read(max_bytes + 1)
    except (OSError, ToolError):
        return
    if len(data) > max_bytes:
        return
    if looks_binary(data[: ctx.limits.binary_probe_bytes]):
        return
    text = data.decode("utf-8", "replace")
    if query not in text:
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if query in line:
            yield number, line.strip()
