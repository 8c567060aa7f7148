"""The system prompt: short, and byte-identical for a given toolset so llama.cpp's prompt cache keeps it.

Nothing in it varies per turn (no dates, no session data), and the tool list is rendered in catalog order. It is
written for a 0.5B model: it says plainly that files are only visible through tools and how a call looks; a bare
JSON object reply is turned into a native tool call by llm-proxy.
"""

from __future__ import annotations

from functools import lru_cache

from codelab_common.protocol.tools import TOOLS_BY_NAME, ToolSpec

_INTRO = (
    "You are CodeLab, a coding assistant working inside the user's project in their IDE. "
    "Answer briefly, in the user's language."
)
_WITH_TOOLS = (
    "You cannot see the project's files unless you call a tool. Use tools to look before you answer about the "
    "code; never invent file contents.\n"
    "To call a tool, reply with only a JSON object and nothing else:\n"
    '{"name": "<tool>", "arguments": {...}}\n'
    "Example, to read main.py:\n"
    '{"name": "read_file", "arguments": {"path": "main.py"}}\n'
    "You then get the tool's result; call another tool or answer. If the user rejected a call, do not repeat it."
)
_WITHOUT_TOOLS = "You have no tools in this conversation: answer from what the user tells you."


@lru_cache(maxsize=64)
def system_prompt(tool_names: tuple[str, ...]) -> str:
    """The prompt for the tools named (model names, in the order they are listed to the model)."""
    if not tool_names:
        return f"{_INTRO}\n{_WITHOUT_TOOLS}"
    listing = "\n".join(_describe(TOOLS_BY_NAME[name]) for name in tool_names)
    return f"{_INTRO}\n{_WITH_TOOLS}\nTools:\n{listing}"


def _describe(tool: ToolSpec) -> str:
    """`- read_file(path, start_line?, end_line?): Read a text file of the project.`"""
    properties = tool.parameters.get("properties", {})
    required = set(tool.parameters.get("required", ()))
    arguments = ", ".join(name if name in required else f"{name}?" for name in properties)
    return f"- {tool.name}({arguments}): {tool.description}"
