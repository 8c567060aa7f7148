"""Caps that keep one tool call from flooding the model's context, the socket or the machine."""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True)
class Limits:
    read_bytes: int = 256 * KIB
    """Most bytes `read_file` returns; longer files come back with `truncated` and `next_start_line`."""
    write_bytes: int = 10 * MIB
    list_entries: int = 1000
    search_matches: int = 200
    search_file_bytes: int = 2 * MIB
    """Files larger than this are not searched (generated or data files, rarely what the model wants)."""
    search_line_chars: int = 400
    output_bytes: int = 64 * KIB
    """Per stream of `run_command`, and for the `git_diff` output (times four)."""
    command_timeout_s: float = 60.0
    command_timeout_max_s: float = 300.0
    patch_bytes: int = 2 * MIB
    binary_probe_bytes: int = 8 * KIB
