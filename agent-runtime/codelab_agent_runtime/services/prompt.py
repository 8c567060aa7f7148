"""The system prompt: short, and byte-identical for a given toolset so the model server's prompt cache keeps it.

Nothing in it varies per turn (no dates, no session data). It says nothing about how a tool call is written: the
tools travel as native `tools` definitions, and llm-proxy adapts them for models that need another format (the
local Qwen models get a tool list and a JSON call format from their tool parser).
"""

from __future__ import annotations

from functools import lru_cache

_INTRO = (
    "You are CodeLab, a coding assistant working inside the user's project in their IDE. "
    "Answer briefly, in the user's language."
)
_WITH_TOOLS = (
    "You work through tools that act on the user's project: read files before you answer about them, change files "
    "with the editing tools, run commands to test. Never invent file contents or tool results: call the tool and "
    "wait for its result. My messages may begin with the project's file list and the contents of the files I name. "
    "When the work is done, say briefly what you did. If I rejected a call, do not repeat it."
)
_WITHOUT_TOOLS = "You have no tools in this conversation: answer from what the user tells you."


@lru_cache(maxsize=64)
def system_prompt(tool_names: tuple[str, ...]) -> str:
    """The prompt for a turn that offers the tools named (an empty tuple: no tools)."""
    return f"{_INTRO}\n{_WITH_TOOLS if tool_names else _WITHOUT_TOOLS}"
