"""The one error type tools raise; the executor turns it into the tool_result `error` string."""

from __future__ import annotations


class ToolError(Exception):
    """A failure the model should read: `[code] message`, like the IDE's `[file_not_found] ...` errors."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


def invalid_arguments(message: str) -> ToolError:
    return ToolError("invalid_arguments", message)
