"""Small file helpers shared by the file tools: binary sniffing, and writes and deletions that stay inside.

Writes and deletions work on a folder descriptor from `Workspace.open_folder` (reached from the workspace root
without following links) and on a bare file name in it (`openat`, `renameat`, `unlinkat`): a folder of the path
swapped for a symlink leading out after `resolve` makes the walk to the folder fail, never a write outside.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from codelab_client.tools.workspace import Workspace, check_regular

_TEMP_TRIES = 16


def looks_binary(head: bytes) -> bool:
    """A NUL byte in the first kilobytes is how git and grep tell binary files apart."""
    return b"\x00" in head


def atomic_write(workspace: Workspace, target: Path, data: bytes, shown: str, *, mode: int | None = None) -> None:
    """Write through a temporary file in the same folder, so a crash never leaves a half-written file.

    `target` is a path from `Workspace.resolve`; `shown` names it in errors. An existing file keeps its mode, and
    must be a regular file with one name, like a file read (it is replaced, so its other names would silently stop
    sharing its content). A new file gets `mode`, or the umask's default.
    """
    folder = workspace.open_folder(target.parent, shown)
    try:
        try:
            existing = os.stat(target.name, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            pass
        else:
            check_regular(existing, shown)
            mode = stat.S_IMODE(existing.st_mode)
        fd, temp = _create_temp(folder, target.name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                os.fchmod(fh.fileno(), 0o666 & ~_umask() if mode is None else mode)
            os.replace(temp, target.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=folder)
            raise
    finally:
        os.close(folder)


def remove_file(workspace: Workspace, target: Path, shown: str) -> None:
    """Delete the file at `target` (a path from `Workspace.resolve`) by its name in its checked folder; a file
    already gone is fine."""
    folder = workspace.open_folder(target.parent, shown)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target.name, dir_fd=folder)
    finally:
        os.close(folder)


def _create_temp(folder: int, name: str) -> tuple[int, str]:
    """A new file `.NAME.<random>.tmp` in `folder`, created exclusively (never an existing file or a symlink)."""
    for _ in range(_TEMP_TRIES):
        temp = f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            return os.open(temp, flags, 0o600, dir_fd=folder), temp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name for {name}")


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
