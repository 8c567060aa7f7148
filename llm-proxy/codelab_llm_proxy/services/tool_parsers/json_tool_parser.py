"""Tool calls written as JSON text, as Qwen2.5-Coder writes them.

A call is `{"name": ..., "arguments": {...}}` (also `"parameters"`, or OpenAI's `{"type": "function", "function":
{...}}`), alone or several in a list, bare, inside a ```json fence or inside Qwen's `<tool_call>` tags. An answer
may open with prose (the 1.5B model writes a sentence, then a fenced call): the prose stays the assistant's text.
From the first call on, the calls that follow one another (only whitespace, fences and tags between them) are
taken, and whatever the model wrote after them is dropped: it cannot depend on results it has not seen yet, and it
is where a model invents them.

A call counts only when it names an offered tool and its arguments fit that tool's schema; JSON that does not is
text. Code fences in other languages are text too, so `{"key": 1}` inside a Python block never holds a stream back.
A call written as a Python call in prose (`write_file("a.txt", "hi")`), or as a JSON-like object with Python's
literals (`"create_dirs": False`), counts on the same terms (`python_calls`).
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from typing import Any, Literal

import orjson

from codelab_common.tool_arguments import argument_errors, coerce_arguments
from codelab_llm_proxy.core.json_body import MAX_JSON_DEPTH, nested_within
from codelab_llm_proxy.services.tool_parsers.base import (
    Extraction,
    OfferedTools,
    ParsedToolCall,
    register_tool_parser,
)
from codelab_llm_proxy.services.tool_parsers.gbnf import tool_call_grammar
from codelab_llm_proxy.services.tool_parsers.json_prompting import RESULT_TAG, with_tools_section
from codelab_llm_proxy.services.tool_parsers.python_calls import (
    balanced_end,
    call_pattern,
    python_call_at,
    python_call_starts,
)

_FENCE = "```"
_FENCE_LANG = re.compile(r"```([A-Za-z0-9_+-]*)")
_JSON_FENCE_LANGS = ("", "json")
_TAG_OPEN, _TAG_CLOSE = "<tool_call>", "</tool_call>"
_HELD_TAGS = (_TAG_OPEN, RESULT_TAG)
"""Tags that hold a stream back: a call, or a tool result the model writes itself (sent whole, so the caller can
recognise it)."""
_CANDIDATE = re.compile(r"[`<{\[]")
_CALL_KEYS = frozenset({"name", "arguments", "parameters", "type", "id"})
_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"\s*")
_TRAILING_WORD = re.compile(r"[A-Za-z_]\w*$")

Kind = Literal["call", "undecided", "text", "code"]
"""What starts at a position: a call (hold), not known yet (wait), plain text, or a code fence of another kind."""


@register_tool_parser("json", "qwen2.5-coder", "bare-json")
class JsonToolParser:
    def prepare_request(self, body: dict[str, Any], *, constrain: bool) -> dict[str, Any]:
        """Tools as a listing in the system message instead of native `tools` (see `json_prompting`); the history's
        calls and results stay in their native roles, which the model's chat template renders in its own format."""
        tools = body.get("tools")
        if not tools:
            return body
        choice = body.get("tool_choice")
        prepared = {k: v for k, v in body.items() if k not in ("tools", "tool_choice", "parallel_tool_calls")}
        prepared["stop"] = _with_stop(body.get("stop"), RESULT_TAG)
        if choice == "none":
            return prepared
        functions = [tool["function"] for tool in tools if tool.get("type") == "function"]
        forced = choice.get("function", {}).get("name") if isinstance(choice, dict) else None
        if forced:
            functions = [function for function in functions if function["name"] == forced]
        prepared["messages"] = with_tools_section(body["messages"], functions)
        if constrain and functions:
            names = [function["name"] for function in functions]
            prepared["grammar"] = tool_call_grammar(names, allow_text=not forced and choice != "required")
        return prepared

    def scanner(self, offered: OfferedTools) -> _Scanner:
        return _Scanner(offered)

    def extract(self, text: str, offered: OfferedTools) -> Extraction | None:
        if not offered:
            return None
        python_starts = set(python_call_starts(text, offered))
        for start in sorted({*_call_starts(text), *python_starts}):
            if start in python_starts:
                calls = _python_calls_at(text, start, offered)
                if calls:
                    return Extraction(calls=calls, text_end=start - 1 if text[start - 1 : start] == "`" else start)
                continue
            calls = _calls_at(text, start, offered)
            if calls:
                return Extraction(calls=calls, text_end=start)
        return None


class _Scanner:
    """Walks a growing answer once: text is released up to the first place a call may start (a JSON call, or an
    offered tool's name followed by `(`, or a word that may grow into one), fences of other languages are skipped
    whole."""

    __slots__ = ("_held", "_in_code", "_longest_name", "_names", "_pos", "_python", "_python_held", "_python_pos")

    def __init__(self, offered: OfferedTools) -> None:
        self._pos = 0
        self._in_code = False
        self._held: int | None = None
        self._names = tuple(offered)
        self._longest_name = max(map(len, self._names), default=0)
        self._python = call_pattern(offered)
        self._python_pos = 0
        self._python_held: int | None = None

    def release_point(self, text: str) -> int:
        point = self._json_point(text)
        return point if self._python is None else min(point, self._python_point(text))

    def _python_point(self, text: str) -> int:
        if self._python_held is not None:
            return self._python_held
        assert self._python is not None
        match = self._python.search(text, self._python_pos)
        if match is not None:
            self._python_held = match.start()
            return match.start()
        tail = _TRAILING_WORD.search(text, max(self._python_pos, len(text) - self._longest_name))
        keep = tail.start() if tail and any(name.startswith(tail.group()) for name in self._names) else len(text)
        self._python_pos = max(self._python_pos, keep)
        return keep

    def _json_point(self, text: str) -> int:
        if self._held is not None:
            return self._held
        while True:
            if self._in_code:
                close = text.find(_FENCE, self._pos)
                if close < 0:
                    self._pos = max(self._pos, len(text.rstrip("`")))
                    return self._pos
                self._pos, self._in_code = close + len(_FENCE), False
                continue
            match = _CANDIDATE.search(text, self._pos)
            if match is None:
                self._pos = len(text)
                return self._pos
            start = match.start()
            kind, end = _classify(text, start)
            if kind == "undecided":
                return start
            if kind == "call":
                self._held = start
                return start
            if kind == "code":
                self._in_code, self._pos = True, end
            else:
                self._pos = start + 1


def _call_starts(text: str) -> Iterator[int]:
    """Positions in a complete answer where a call may start, outside code fences of other languages."""
    pos = 0
    while (match := _CANDIDATE.search(text, pos)) is not None:
        start = match.start()
        kind, end = _classify(text, start)
        if kind == "call":
            yield start
            pos = start + 1
        elif kind == "code":
            close = text.find(_FENCE, end)
            if close < 0:
                return
            pos = close + len(_FENCE)
        else:
            pos = start + 1


def _classify(text: str, start: int) -> tuple[Kind, int]:
    char = text[start]
    if char == "{":
        rest = text[start + 1 :].lstrip()
        if not rest:
            return "undecided", start
        return ("call" if rest[0] in "\"'" else "text"), start
    if char == "[":
        rest = text[start + 1 :].lstrip()
        if not rest:
            return "undecided", start
        return (_classify(text, len(text) - len(rest))[0] if rest[0] == "{" else "text"), start
    if char == "<":
        tail = text[start : start + max(map(len, _HELD_TAGS))]
        if any(tail.startswith(tag) for tag in _HELD_TAGS):
            return "call", start
        return ("undecided" if any(tag.startswith(tail) for tag in _HELD_TAGS) else "text"), start
    return _classify_fence(text, start)


def _classify_fence(text: str, start: int) -> tuple[Kind, int]:
    tail = text[start : start + len(_FENCE)]
    if tail != _FENCE:
        return ("undecided" if _FENCE.startswith(tail) else "text"), start
    match = _FENCE_LANG.match(text, start)
    assert match is not None
    lang, end = match.group(1).lower(), match.end()
    if end == len(text):
        return ("undecided" if "json".startswith(lang) else "code"), end
    if lang not in _JSON_FENCE_LANGS:
        return "code", end
    rest = text[end:].lstrip()
    if not rest:
        return "undecided", end
    if rest[0] in "{[<":
        kind, _ = _classify(text, len(text) - len(rest))
        if kind != "text":
            return kind, end
    return "code", end


def _calls_at(text: str, pos: int, offered: OfferedTools) -> list[ParsedToolCall]:
    """The calls that follow one another from `pos` (only whitespace, json fences and call tags between them)."""
    calls: list[ParsedToolCall] = []
    in_fence = in_tag = False
    end = len(text)
    while True:
        match = _WHITESPACE.match(text, pos)
        pos = match.end() if match else pos
        if pos >= end:
            return calls
        if text.startswith(_FENCE, pos):
            if in_fence:
                in_fence, pos = False, pos + len(_FENCE)
                continue
            lang = _FENCE_LANG.match(text, pos)
            if in_tag or lang is None or lang.group(1).lower() not in _JSON_FENCE_LANGS:
                return calls
            in_fence, pos = True, lang.end()
            continue
        if text.startswith(_TAG_OPEN, pos) and not (in_tag or in_fence):
            in_tag, pos = True, pos + len(_TAG_OPEN)
            continue
        if text.startswith(_TAG_CLOSE, pos) and in_tag:
            in_tag, pos = False, pos + len(_TAG_CLOSE)
            continue
        try:
            value, pos = _DECODER.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError):
            found = _python_literal_at(text, pos)
            if found is None:
                return calls
            value, pos = found
        items = value if isinstance(value, list) else [value]
        parsed = [_as_call(item, offered) for item in items]
        if not parsed or any(call is None for call in parsed):
            return calls
        calls.extend(call for call in parsed if call is not None)


def _python_literal_at(text: str, pos: int) -> tuple[Any, int] | None:
    """A call written with Python's literals (`False`, `None`, single quotes), as the 0.5B model does, read as a
    Python literal (never run); None when `text[pos:]` does not start with one."""
    end = balanced_end(text, pos)
    if end is None:
        return None
    try:
        return ast.literal_eval(text[pos:end]), end
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def _python_calls_at(text: str, pos: int, offered: OfferedTools) -> list[ParsedToolCall]:
    """The Python calls that follow one another from `pos` (only whitespace and `;` between them)."""
    calls: list[ParsedToolCall] = []
    while (found := python_call_at(text, pos, offered)) is not None:
        call, end = found
        calls.append(call)
        gap = re.match(r"[\s;`]*", text[end:])
        pos = end + (gap.end() if gap else 0)
        if pos >= len(text) or not any(text.startswith(f"{name}(", pos) for name in offered):
            break
    return calls


def _as_call(value: Any, offered: OfferedTools) -> ParsedToolCall | None:
    if not isinstance(value, dict):
        return None
    if "name" not in value and isinstance(value.get("function"), dict):
        value = value["function"]
    name = value.get("name")
    if not isinstance(name, str) or name not in offered or not value.keys() <= _CALL_KEYS:
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments) if arguments.strip() else {}
        except orjson.JSONDecodeError:
            return None
    if not isinstance(arguments, dict) or not nested_within(arguments, MAX_JSON_DEPTH):
        return None
    arguments = coerce_arguments(offered[name], arguments)
    if argument_errors(offered[name], arguments):
        return None
    return ParsedToolCall(name=name, arguments=orjson.dumps(arguments).decode())


def _with_stop(stop: Any, sequence: str) -> list[str]:
    existing = [stop] if isinstance(stop, str) else list(stop or ())
    return existing if sequence in existing else [*existing, sequence]
