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
    "You work through tools that act on the user's project. My messages may begin with the project's file list "
    "and the contents of its files: answer questions about them from that text. To create a file, call write_file; "
    "to change one, call edit_file with old_text copied exactly from the file; to run tests or programs, call "
    "run_command. If a tool returns an error, correct the call and try again. Never invent file contents or tool "
    "results. When the work is done, answer in one or two sentences: the answer to my question, or what you "
    "changed. If I rejected a call, do not repeat it."
)
_WITHOUT_TOOLS = "You have no tools in this conversation: answer from what the user tells you."


@lru_cache(maxsize=64)
def system_prompt(tool_names: tuple[str, ...]) -> str:
    """The prompt for a turn that offers the tools named (an empty tuple: no tools)."""
    return f"{_INTRO}\n{_WITH_TOOLS if tool_names else _WITHOUT_TOOLS}"
