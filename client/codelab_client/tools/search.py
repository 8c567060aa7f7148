"""`search_in_project {query, path?}` → `{success, matches: [{path, line, text}], total_count, truncated}`.

A plain, case-sensitive substring search over the project's text files. Skipped: version-control and cache
folders, virtual environments and node_modules, symlinks (they may lead out of the workspace), binary files and
files over the size cap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from codelab_client.tools import args
from codelab_client.tools.context import ToolContext
from codelab_client.tools.errors import ToolError
from codelab_client.tools.files import looks_binary

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
    for file in _text_files(start):
        for number, text in _matching_lines(file, query, limits.search_file_bytes, limits.binary_probe_bytes):
            if len(matches) >= limits.search_matches:
                truncated = True
                break
            matches.append(
                {"path": ctx.workspace.relative(file), "line": number, "text": text[: limits.search_line_chars]}
            )
        if truncated:
            break
    return {"success": True, "matches": matches, "total_count": len(matches), "truncated": truncated}


def _text_files(start: Path) -> Iterator[Path]:
    if start.is_file():
        yield start
        return
    for folder, dirs, files in os.walk(start):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS)
        for name in sorted(files):
            file = Path(folder, name)
            if not file.is_symlink():
                yield file


def _matching_lines(file: Path, query: str, max_bytes: int, probe: int) -> Iterator[tuple[int, str]]:
    try:
        if file.stat().st_size > max_bytes:
            return
        data = file.read_bytes()
    except OSError:
        return
    if looks_binary(data[:probe]):
        return
    text = data.decode("utf-8", "replace")
    if query not in text:
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if query in line:
            yield number, line.strip()
