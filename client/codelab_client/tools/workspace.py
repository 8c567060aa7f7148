"""Confinement of every path a tool touches to the workspace folder.

A path is resolved with `realpath` (following every symlink, existing or dangling) and accepted only when the
result is the workspace root or inside it. So `../x`, absolute paths and symlinks that lead out are refused,
while symlinks between places inside the workspace keep working.
"""

from __future__ import annotations

import os
from pathlib import Path

from codelab_client.tools.errors import ToolError, invalid_arguments


class Workspace:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise ValueError(f"workspace {root} is not a folder")
        self.root = Path(real)
        self._prefix = real.rstrip(os.sep) + os.sep

    def contains(self, real_path: str) -> bool:
        return real_path == str(self.root) or real_path.startswith(self._prefix)

    def resolve(self, path: str) -> Path:
        """The real path `path` (relative to the root) designates, refused when it lies outside the workspace."""
        if "\x00" in path:
            raise invalid_arguments("path contains a NUL character")
        if not path.strip():
            raise invalid_arguments("path must not be empty")
        if os.path.isabs(path):
            raise ToolError(
                "path_outside_workspace", f"{path}: absolute paths are not allowed, use a path relative to the project"
            )
        real = os.path.realpath(os.path.join(self.root, path))
        if not self.contains(real):
            raise ToolError("path_outside_workspace", f"{path} is outside the workspace")
        return Path(real)

    def relative(self, real_path: str | os.PathLike[str]) -> str:
        """The path as the model should write it: relative to the root, `/`-separated, `.` for the root."""
        rel = os.path.relpath(real_path, self.root)
        return Path(rel).as_posix()
