"""What the model is shown of the project before it starts a turn: the file list and the files the user names.

A small model answers from what is in front of it and invents the rest, so at the start of each turn the agent
asks the client (through its own `list_files` and `read_file` tools: the client still executes everything) for
the project's files and for the contents of every file the message names. A small project (at most
`SMALL_PROJECT_FILES` files) is then shown whole, as far as `SMALL_PROJECT_CHARS` allows, in a second round of
reads. The rendered context is bounded, and it becomes part of the turn's user message in the history, so later
model calls see the same bytes and the model server's prompt cache keeps them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

LIST_TOOL, READ_TOOL = "list_files", "read_file"
MAX_NAMED_FILES = 3
MAX_LISTED_PATHS = 80
MAX_LIST_CHARS = 1_500
MAX_FILE_CHARS = 3_000
SMALL_PROJECT_FILES = 12
SMALL_PROJECT_CHARS = 4_000
TEXT_SUFFIXES = (
    *(".py", ".pyi", ".js", ".ts", ".tsx", ".jsx", ".json", ".toml", ".yaml", ".yml", ".ini", ".cfg", ".txt"),
    *(".md", ".rst", ".sh", ".env", ".html", ".css", ".sql", ".go", ".rs", ".java", ".kt", ".c", ".h", ".cpp"),
    *(".hpp", ".cs", ".rb", ".php", ".dart", ".swift", ".gitignore", ".example"),
)

_PATH_LIKE = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]*\w\.[A-Za-z][A-Za-z0-9]{0,7})(?![\w/-])")
"""A word with a file extension (`calc.py`, `src/app/main.ts`, `.env.example`), not a URL or a version number."""


@dataclass(frozen=True, slots=True)
class ContextCall:
    name: str
    arguments: dict[str, Any]


def context_calls(message: str, offered: tuple[str, ...]) -> list[ContextCall]:
    """The calls that gather the context of a turn, for a client that offers both tools; else none."""
    if LIST_TOOL not in offered or READ_TOOL not in offered:
        return []
    calls = [ContextCall(LIST_TOOL, {"path": ".", "recursive": True})]
    for path in named_paths(message):
        calls.append(ContextCall(READ_TOOL, {"path": path}))
    return calls


def named_paths(message: str) -> list[str]:
    """The file paths a message names, in order, without duplicates (at most `MAX_NAMED_FILES`)."""
    found: list[str] = []
    for match in _PATH_LIKE.finditer(message):
        path = match.group(1).removeprefix("./").rstrip(".")
        if path and path not in found and "." in path.rsplit("/", 1)[-1]:
            found.append(path)
    return found[:MAX_NAMED_FILES]


def more_reads(listing: Any, already: list[str]) -> list[ContextCall]:
    """For a small project, reads of its other small text files, smallest first, within `SMALL_PROJECT_CHARS`."""
    items = listing.get("items") if isinstance(listing, dict) else None
    if not isinstance(items, list) or listing.get("truncated"):
        return []
    files = [item for item in items if isinstance(item, dict) and item.get("type") == "file"]
    if len(files) > SMALL_PROJECT_FILES:
        return []
    reads: list[ContextCall] = []
    budget = SMALL_PROJECT_CHARS
    for item in sorted(files, key=lambda item: (item.get("size") or 0, str(item.get("path")))):
        path, size = item.get("path"), item.get("size")
        if not isinstance(path, str) or path in already or not isinstance(size, int) or not _is_text(path):
            continue
        if size > budget:
            break
        budget -= size
        reads.append(ContextCall(READ_TOOL, {"path": path}))
    return reads


def _is_text(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(TEXT_SUFFIXES)


def render_piece(name: str, arguments: dict[str, Any], result: Any, error: str | None) -> str:
    """One context call's part of the context, from the client's result (or its error)."""
    if name == LIST_TOOL:
        return _render_listing(result) if error is None and isinstance(result, dict) else ""
    path = arguments.get("path", "")
    if error is not None or not isinstance(result, dict):
        return f"{path} does not exist (or cannot be read)."
    content = result.get("content")
    if not isinstance(content, str):
        return ""
    if len(content) > MAX_FILE_CHARS:
        content = f"{content[:MAX_FILE_CHARS]}\n[... the rest of {path} is not shown; read_file it by line range]"
    return f"Contents of {path}:\n```\n{content.rstrip()}\n```"


def compose(pieces: list[str], request: str) -> str:
    """The user message the model sees: the context, then what the user asked."""
    context = "\n\n".join(piece for piece in pieces if piece)
    return f"{context}\n\nMy request: {request}" if context else request


def _render_listing(result: dict[str, Any]) -> str:
    items = result.get("items")
    if not isinstance(items, list):
        return ""
    paths = sorted(
        str(item["path"]) + ("/" if item.get("type") == "directory" else "")
        for item in items
        if isinstance(item, dict) and isinstance(item.get("path"), str)
    )
    shown: list[str] = []
    size = 0
    for path in paths[:MAX_LISTED_PATHS]:
        size += len(path) + 1
        if size > MAX_LIST_CHARS:
            break
        shown.append(path)
    if not shown:
        return "The project has no files yet."
    more = len(paths) - len(shown)
    tail = f"\n[{more} more not shown]" if more > 0 or result.get("truncated") else ""
    return "Files in the project:\n" + "\n".join(shown) + tail
