"""Read one string from a GGUF file's metadata (enough to borrow a model's chat template).

GGUF layout: magic `GGUF`, version (u32), tensor count (u64), key/value count (u64), then key/value pairs
(key: u64 length + UTF-8; value: u32 type tag + payload). Arrays (the tokenizer's 150k tokens) are skipped.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

_MAGIC = b"GGUF"
_STRING, _ARRAY = 8, 9
_FIXED_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"


class GGUFError(ValueError):
    pass


def _u32(f: BinaryIO) -> int:
    return int(struct.unpack("<I", _read(f, 4))[0])


def _u64(f: BinaryIO) -> int:
    return int(struct.unpack("<Q", _read(f, 8))[0])


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise GGUFError("truncated GGUF file")
    return data


def _string(f: BinaryIO) -> str:
    return _read(f, _u64(f)).decode("utf-8")


def _skip(f: BinaryIO, value_type: int) -> None:
    if value_type == _STRING:
        f.seek(_u64(f), 1)
    elif value_type == _ARRAY:
        item_type, count = _u32(f), _u64(f)
        if item_type in _FIXED_SIZES:
            f.seek(_FIXED_SIZES[item_type] * count, 1)
        else:
            for _ in range(count):
                _skip(f, item_type)
    elif value_type in _FIXED_SIZES:
        f.seek(_FIXED_SIZES[value_type], 1)
    else:
        raise GGUFError(f"unknown GGUF value type {value_type}")


def read_string_metadata(path: Path, key: str) -> str | None:
    """The string stored under `key`, or None when the file has no such key."""
    with path.open("rb") as f:
        if _read(f, 4) != _MAGIC:
            raise GGUFError(f"{path} is not a GGUF file")
        version = _u32(f)
        if version < 2:
            raise GGUFError(f"GGUF version {version} is not supported")
        _u64(f)  # tensor count
        for _ in range(_u64(f)):
            name = _string(f)
            value_type = _u32(f)
            if name == key:
                if value_type != _STRING:
                    raise GGUFError(f"GGUF key {key} is not a string")
                return _string(f)
            _skip(f, value_type)
    return None


def read_chat_template(path: Path) -> str | None:
    return read_string_metadata(path, CHAT_TEMPLATE_KEY)
