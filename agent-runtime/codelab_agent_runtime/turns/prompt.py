"""The system prompt: short, and byte-identical for a given toolset so the model server's prompt cache keeps it.

Nothing in it varies per turn (no dates, no session data). It says nothing about how a tool call is written: the
tools travel as native `tools` definitions, and llm-proxy adapts them for models that need another format (the
local Qwen models get a tool list and a JSON call format from their tool parser). It names only tools that are
offered: a small model calls whatever the prompt names.
"""

from __future__ import annotations

from functools import lru_cache

_INTRO = (
    "You are CodeLab, a coding assistant working inside the user's project in their IDE. "
    "Answer briefly, in the user's language."
)
_CONTEXT = (
    "You work through tools that act on the user's project. My messages may begin with the project's file list "
    "and the contents of its files: answer questions about them from that text."
)
_TOOL_USES = (
    ("write_file", "To create a file, call write_file."),
    ("edit_file", "To change a file, call edit_file with old_text copied exactly from the file."),
    ("run_command", "To run tests or programs, call run_command."),
    ("update_plan", "For a task of several steps, first call update_plan with the steps, then again as each is done."),
)
_RULES = (
    "If a tool returns an error, correct the call and try again. Make every change the request needs before you "
    "answer: a rename changes every file that uses the name. A test file imports what it tests, and its tests are "
    "plain functions. Never invent file contents or tool results. "
    "When the work is done, answer in one or two sentences: the answer to my question, or what you changed."
)
_WITHOUT_TOOLS = "You have no tools in this conversation: answer from what the user tells you."


@lru_cache(maxsize=64)
def system_prompt(tool_names: tuple[str, ...]) -> str:
    """The prompt for a turn that offers the tools named (an empty tuple: no tools)."""
    if not tool_names:
        return f"{_INTRO}\n{_WITHOUT_TOOLS}"
    names = set(tool_names)
    uses = [sentence for tool, sentence in _TOOL_USES if tool in names]
    if "write_file" in names and "edit_file" not in names:
        uses.insert(1, "To change a file, call write_file with its whole new content.")
    return " ".join([f"{_INTRO}\n{_CONTEXT}", *uses, _RULES])
