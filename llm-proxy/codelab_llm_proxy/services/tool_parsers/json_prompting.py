"""How tools are put before a model that has no native tool calling and writes its calls as JSON text.

The native `tools` list is replaced by a short listing in the system message and the call format, because a
0.5B model follows a few plain lines far better than the chat template's long JSON schema block (and the prompt
stays a third of the size, byte-stable across turns, so the server's prompt cache keeps it).

The call format is the one Qwen's chat template uses when it renders earlier calls of the history (assistant
`tool_calls` become `<tool_call>` blocks, `tool` messages become `<tool_response>` blocks in a user turn): a model
that imitates its history therefore writes a real call, never a record that only looks like one.
"""

from __future__ import annotations

from typing import Any

RESULT_TAG = "<tool_response>"
"""How the template shows a tool's result; a model that writes it has invented a result (it is a stop sequence)."""
CALL_FORMAT = (
    "To use a tool, answer with only the call, in this form:\n"
    '<tool_call>\n{"name": "<tool name>", "arguments": {<the arguments as JSON>}}\n</tool_call>\n'
    "The tool's result comes back in the next message. To answer the user, write plain text."
)


def tools_section(functions: list[dict[str, Any]]) -> str:
    """`Tools:` then one line per tool (`- name(arg, optional?): description`), then the call format."""
    return "\n".join(["Tools:", *(_signature(function) for function in functions), CALL_FORMAT])


def with_tools_section(messages: list[dict[str, Any]], functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with the tools section at the end of the system message (one is added if there is none)."""
    section = tools_section(functions)
    if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
        return [{**messages[0], "content": f"{messages[0]['content']}\n{section}"}, *messages[1:]]
    return [{"role": "system", "content": section}, *messages]


def _signature(function: dict[str, Any]) -> str:
    parameters = function.get("parameters") or {}
    required = set(parameters.get("required") or ())
    arguments = ", ".join(name if name in required else f"{name}?" for name in parameters.get("properties") or {})
    description = (function.get("description") or "").strip()
    return f"- {function['name']}({arguments}): {description}" if description else f"- {function['name']}({arguments})"
