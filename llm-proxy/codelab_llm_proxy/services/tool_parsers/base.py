"""Tool-call parsers: recover tool calls that a model wrote as text instead of native `tool_calls`.

Small local models (Qwen2.5-Coder through llama.cpp) answer a tool call as text: a JSON object, inside a code
fence or Qwen's `<tool_call>` tags, often after a sentence. A parser for such a model family answers two
questions, and the generic extraction (`extraction.py`) does the rest for streamed and whole answers:

- `scanner(offered)`: a fresh `CallScanner` for one streamed answer, which says how much of the text so far cannot be
  part of a call and may be sent at once; from the first place a call may start, text is held until the end.
- `extract(text, offered)`: the calls in a complete answer and where the text before them ends, or None when it
  holds no call to an offered tool with arguments that fit the tool's schema.

Before the request goes upstream, `prepare_request(body, constrain)` may reshape it for the family (how tools
are presented; with `constrain`, a grammar for llama.cpp servers so calls come out well formed).

Parsers are registered by name (`register_tool_parser`) and picked per model by `tool_parser` in the models file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

OfferedTools = Mapping[str, Mapping[str, Any]]
"""The tools a request offers: name → parameters (a JSON Schema object)."""


@dataclass(frozen=True, slots=True)
class ParsedToolCall:
    name: str
    arguments: str
    """The arguments as a JSON object in a string, as OpenAI sends them."""


@dataclass(frozen=True, slots=True)
class Extraction:
    calls: list[ParsedToolCall]
    text_end: int
    """The answer's text before this index is the assistant's prose; the rest (the calls, and whatever the model
    wrote after them, which cannot depend on results it has not seen) is not text."""


class CallScanner(Protocol):
    def release_point(self, text: str) -> int:
        """How many leading characters of `text` (the answer so far; it only grows) cannot belong to a call."""
        ...


class ToolParser(Protocol):
    def prepare_request(self, body: dict[str, Any], *, constrain: bool) -> dict[str, Any]: ...

    def scanner(self, offered: OfferedTools) -> CallScanner: ...

    def extract(self, text: str, offered: OfferedTools) -> Extraction | None: ...


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
