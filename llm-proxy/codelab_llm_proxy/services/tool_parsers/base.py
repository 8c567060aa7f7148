"""Tool-call parsers: recover tool calls that a model wrote as plain text instead of native `tool_calls`.

Small local models (Qwen2.5-Coder through llama.cpp) often answer a tool call as text, e.g. a bare JSON object.
A parser for such a model family answers two questions, and the generic extraction (`extraction.py`) does
the rest for streamed and whole answers:

- `classify_prefix(text)`: can an answer starting with `text` still turn out to be a call? Streaming holds text
  back only while the answer is "undecided" or looks like a "call", and releases it as soon as it is "text".
- `extract(text, offered)`: the calls in a complete answer, or None when it is not entirely calls to offered tools.

Before the request goes upstream, `prepare_request(body, constrain)` may reshape it for the family (how tools
are presented; with `constrain`, a grammar for llama.cpp servers so calls come out well formed).

Parsers are registered by name (`register_tool_parser`) and picked per model by `tool_parser` in the models file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

PrefixKind = Literal["call", "undecided", "text"]
"""`call`: looks like the start of a call, hold until the answer ends; `undecided`: need more text;
`text`: cannot be a call, release it."""


@dataclass(frozen=True, slots=True)
class ParsedToolCall:
    name: str
    arguments: str
    """The arguments as a JSON object in a string, as OpenAI sends them."""


class ToolParser(Protocol):
    def prepare_request(self, body: dict[str, Any], *, constrain: bool) -> dict[str, Any]: ...

    def classify_prefix(self, text: str) -> PrefixKind: ...

    def extract(self, text: str, offered: frozenset[str]) -> list[ParsedToolCall] | None: ...


_PARSERS: dict[str, Callable[[], ToolParser]] = {}


def register_tool_parser(*names: str) -> Callable[[Callable[[], ToolParser]], Callable[[], ToolParser]]:
    def decorate(factory: Callable[[], ToolParser]) -> Callable[[], ToolParser]:
        for name in names:
            _PARSERS[name] = factory
        return factory

    return decorate


def tool_parser_names() -> list[str]:
    return sorted(_PARSERS)


def get_tool_parser(name: str) -> ToolParser:
    try:
        return _PARSERS[name]()
    except KeyError:
        raise ValueError(f"unknown tool parser {name!r} (known: {', '.join(tool_parser_names())})") from None
