"""Confinement of every path a tool touches to the workspace folder.

Two steps. `resolve` turns the model's path into a real path (`realpath`, following every symlink, existing or
dangling) and accepts it only when the result is the workspace root or inside it. So `../x`, absolute paths and
symlinks that lead out are refused, while symlinks between places inside the workspace keep working.

That check is about a name, and a name can change before the file behind it is opened: a process in the workspace
can swap the file, or a folder on its way, for a symlink leading out in between. So contents are only ever reached
through `open_file` and `open_folder`, which walk the real path from the root one component at a time (`openat`)
without following any symlink: the real path has none, so one met on the way was swapped in since, and the call
is refused. Whatever is swapped after a component was opened no longer matters, since the walk goes on from the
descriptor, not from the name. On Linux the opened descriptor's path (`/proc/self/fd`) must then be inside the
workspace too, a second check costing one readlink. Writes and deletions go through a folder descriptor reached
the same way (`*at` calls), so they cannot land outside either (see `files.py`).

Special files are never opened: a named pipe would block the tool forever, a device could do anything on open.
On Linux the file is first opened with `O_PATH`, which opens nothing (no pipe, no driver), checked, and only then
opened for reading through `/proc/self/fd`. Elsewhere its directory entry is looked at first (`fstatat`), and it
is opened with `O_NONBLOCK` (a pipe swapped in after that look cannot block) and checked again with `fstat`.

A file with more than one name (hard links) is refused: its other names may be outside the workspace, and
nothing tells where they are, so its content may be a file the workspace has no right to.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

from codelab_client.tools.errors import ToolError, invalid_arguments

PROC_FD = "/proc/self/fd"
USE_PROC_FD = hasattr(os, "O_PATH") and os.path.isdir(PROC_FD)
"""Linux: files are opened `O_PATH` first, and what a descriptor designates is read from `/proc/self/fd`. Tests
turn it off to exercise what other systems do (the walk alone, and `O_NONBLOCK`)."""


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
        if path.split("/", 1)[0] == "~" or os.path.expanduser(path) != path:
            # No tool expands `~`, but a model writing it means a home folder, never a folder named `~` here.
            raise ToolError("path_outside_workspace", f"{path}: `~` is a home folder, outside the workspace")
        try:
            real = os.path.realpath(os.path.join(self.root, path))
        except OSError:  # a symlink on the way was replaced between realpath's lstat and readlink
            raise _changed(path) from None
        if not self.contains(real):
            raise ToolError("path_outside_workspace", f"{path} is outside the workspace")
        return Path(real)

    def relative(self, real_path: str | os.PathLike[str]) -> str:
        """The path as the model should write it: relative to the root, `/`-separated, `.` for the root."""
        rel = os.path.relpath(real_path, self.root)
        return Path(rel).as_posix()

    def open_file(self, real: Path, shown: str) -> BinaryIO:
        """The regular file at `real` (a path from `resolve`), open for reading; `shown` names it in errors.

        Raises FileNotFoundError when nothing is there (each tool words that its own way), and ToolError when it is a
        folder, a special file, a file with several names, or a path that changed since `resolve`.
        """
        if real == self.root:
            raise ToolError("is_a_directory", f"{shown} is a directory")
        folder = self._walk(real.parent, shown)
        try:
            return self.open_file_in(folder, real.name, shown)
        finally:
            os.close(folder)

    def open_file_in(self, folder: int, name: str, shown: str) -> BinaryIO:
        """`open_file` of the entry `name` of a folder descriptor from `open_folder` (a search opens many files of
        one folder)."""
        if USE_PROC_FD:
            handle = _open_in(folder, name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, shown)
            try:
                self._check_file(handle, shown)
                fd = os.open(f"{PROC_FD}/{handle}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
            finally:
                os.close(handle)
        else:
            # Refused before anything opens it; one swapped in after this look is opened without blocking, and
            # refused by the check after the open.
            check_regular(os.stat(name, dir_fd=folder, follow_symlinks=False), shown)
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY
            fd = _open_in(folder, name, flags, shown)
            try:
                self._check_file(fd, shown)
                os.set_blocking(fd, True)
            except BaseException:
                os.close(fd)
                raise
        return os.fdopen(fd, "rb")

    def open_folder(self, real: Path, shown: str) -> int:
        """A descriptor of the folder at `real` (a path from `resolve`), reached from the root without following
        links; the caller closes it. Files are then created, replaced and removed relative to it, never by path."""
        return self._walk(real, shown)

    def make_folders(self, real: Path, shown: str) -> None:
        """`mkdir -p` of `real` (a path from `resolve`), walking from the root like `open_folder`, so a folder swapped
        for a symlink meanwhile cannot make it create folders outside."""
        os.close(self._walk(real, shown, create=True))

    def _walk(self, real: Path, shown: str, *, create: bool = False) -> int:
        """The folder `real`, opened one component at a time from the root with O_NOFOLLOW (see the module
        docstring); each missing component is made first when `create`."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for part in real.relative_to(self.root).parts:
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, dir_fd=fd)
                inner = _open_in(fd, part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, shown)
                os.close(fd)
                fd = inner
            self._check_inside(fd, shown)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _check_file(self, fd: int, shown: str) -> None:
        check_regular(os.fstat(fd), shown)
        self._check_inside(fd, shown)

    def _check_inside(self, fd: int, shown: str) -> None:
        """Linux: the descriptor's own path must be inside the workspace; a second check after the walk, against
        a folder moved out of the workspace while the walk held it."""
        if USE_PROC_FD and not self.contains(os.readlink(f"{PROC_FD}/{fd}")):
            raise ToolError("path_outside_workspace", f"{shown} is outside the workspace (it changed as it was opened)")


def check_regular(info: os.stat_result, shown: str) -> None:
    """What a tool may read or overwrite: a regular file with a single name (see the module docstring)."""
    if stat.S_ISLNK(info.st_mode):
        raise _changed(shown)
    if stat.S_ISDIR(info.st_mode):
        raise ToolError("is_a_directory", f"{shown} is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise ToolError(
            "not_a_regular_file", f"{shown} is not a regular file (a named pipe, socket or device); tools never open it"
        )
    if info.st_nlink > 1:
        raise ToolError(
            "hard_linked",
            f"{shown} has {info.st_nlink} names (hard links); its other names may be outside the project, so tools "
            "neither read nor write it",
        )


def _open_in(folder: int, name: str, flags: int, shown: str) -> int:
    """`name` in `folder` opened with `flags` (O_NOFOLLOW among them); a symlink there is a change since `resolve`."""
    try:
        return os.open(name, flags, dir_fd=folder)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.ENOTDIR and _link_or_folder(folder, name)):
            raise _changed(shown) from None  # a folder refused as "not a folder" was a symlink a moment ago
        if exc.errno == errno.ENOTDIR:
            raise ToolError("not_a_directory", f"a parent of {shown} is a file") from None
        raise


def _link_or_folder(folder: int, name: str) -> bool:
    try:
        mode = os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode
    except OSError:
        return False
    return stat.S_ISLNK(mode) or stat.S_ISDIR(mode)


def _changed(shown: str) -> ToolError:
    """A symlink came or went on the path while the tool ran: the real path `resolve` returns has none in it."""
    return ToolError("path_changed", f"{shown} changed while the tool ran (a symlink came or went); try again")
