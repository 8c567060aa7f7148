"""Small file helpers shared by the file tools: binary sniffing and atomic writes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def looks_binary(head: bytes) -> bool:
    """A NUL byte in the first kilobytes is how git and grep tell binary files apart."""
    return b"\x00" in head


def atomic_write(target: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, so a crash never leaves a half-written file.

    The mode of an existing file is kept.
    """
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if target.exists():
            shutil.copymode(target, tmp)
        else:
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
