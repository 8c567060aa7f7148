"""The messages sent per model call: the system prompt and as much recent history as the budget allows.

The session keeps its whole history; only what is sent is cut, and only at the start of a user turn, so the model
never sees a tool result without the call that asked for it.
"""

from __future__ import annotations

from typing import Any


def message_size(message: dict[str, Any]) -> int:
    size = len(message.get("content") or "")
    for call in message.get("tool_calls") or ():
        function = call.get("function", {})
        size += len(function.get("name", "")) + len(function.get("arguments", ""))
    return size


def build_messages(system_prompt: str, history: list[dict[str, Any]], max_chars: int) -> list[dict[str, Any]]:
    start = 0
    remaining = sum(message_size(message) for message in history)
    if remaining > max_chars:
        last_user = max((i for i, m in enumerate(history) if m.get("role") == "user"), default=0)
        while start < last_user and remaining > max_chars:
            remaining -= message_size(history[start])
            start += 1
        while start < last_user and history[start].get("role") != "user":
            start += 1
    return [{"role": "system", "content": system_prompt}, *history[start:]]
