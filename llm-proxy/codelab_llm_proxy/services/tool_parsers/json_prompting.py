"""How tools are put before a model that has no native tool calling and answers a call as bare JSON.

The native `tools` list is replaced by a short listing in the system message and the call format, because a
0.5B model follows a few plain lines far better than the chat template's long JSON schema block (and the prompt
stays a third of the size, byte-stable across turns, so the server's prompt cache keeps it).

When the client asks for an answer without tools (`tool_choice: "none"`), earlier calls and their results are
written out as plain assistant text: these models otherwise tend to repeat the last call instead of answering.
"""

from __future__ import annotations

from typing import Any

import orjson

CALL_FORMAT = 'To use a tool, answer with only a JSON object {"name": <one of the tools above>, "arguments": {...}}.'
EXAMPLES = {
    "read_file": 'if the user asks "explain utils.py", answer {"name": "read_file", "arguments": {"path": "utils.py"}}',
    "list_files": 'if the user asks which files there are, answer {"name": "list_files", "arguments": {"path": "."}}',
}
ANSWER_NOW = "Now answer my request: {request}"


def tools_section(functions: list[dict[str, Any]]) -> str:
    """`Tools:` then one line per tool (`- name(arg, optional?): description`), the call format, examples."""
    lines = ["Tools:", *(_signature(function) for function in functions), CALL_FORMAT]
    examples = [EXAMPLES[f["name"]] for f in functions if f["name"] in EXAMPLES]
    if examples:
        lines.append(f"For example, {'; '.join(examples)}.")
    return "\n".join(lines)


def with_tools_section(messages: list[dict[str, Any]], functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with the tools section at the end of the system message (one is added if there is none)."""
    section = tools_section(functions)
    if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
        return [{**messages[0], "content": f"{messages[0]['content']}\n{section}"}, *messages[1:]]
    return [{"role": "system", "content": section}, *messages]


def flatten_tool_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Calls and results as plain assistant text; if results came last, a closing user line restates the request."""
    names: dict[str, str] = {}
    flat: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant" and message.get("tool_calls"):
            for call in message["tool_calls"]:
                function = call.get("function") or {}
                names[call.get("id", "")] = f"{function.get('name', 'tool')} {function.get('arguments') or '{}'}"
            if message.get("content"):
                flat.append({"role": "assistant", "content": message["content"]})
        elif role == "tool":
            call = names.get(message.get("tool_call_id", ""), "a tool")
            flat.append({"role": "assistant", "content": f"{call} returned:\n{_text(message.get('content'))}"})
        else:
            flat.append(message)
    if messages and messages[-1].get("role") == "tool":
        request = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
        flat.append({"role": "user", "content": ANSWER_NOW.format(request=_text(request or ""))})
    return flat


def _signature(function: dict[str, Any]) -> str:
    parameters = function.get("parameters") or {}
    required = set(parameters.get("required") or ())
    arguments = ", ".join(name if name in required else f"{name}?" for name in parameters.get("properties") or {})
    description = (function.get("description") or "").strip()
    return f"- {function['name']}({arguments}): {description}" if description else f"- {function['name']}({arguments})"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return orjson.dumps(content).decode()
