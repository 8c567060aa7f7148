"""Tool calls written in Python's syntax: a call in prose, `write_file("settings.json", '{"port": 5173}')`, and the
bracket matching that reads a JSON-like object with Python's literals (`False`, `None`).

Qwen2.5-Coder sometimes answers "To create it, call write_file(...)" instead of a JSON call. Such a call counts
only when it names an offered tool right before `(`, every argument is a literal (strings, numbers, booleans,
None, lists, dicts), positional arguments fill the tool's parameters in their declared order, and the result fits
the tool's schema; `read_file(path)` (a name, not a value) stays text. The text is parsed with `ast` and values are
read with `ast.literal_eval`: nothing in it is ever run.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from codelab_common.tool_arguments import argument_errors, coerce_arguments
from codelab_llm_proxy.services.tool_parsers.base import OfferedTools, ParsedToolCall

MAX_CALL_CHARS = 32_768
"""A Python call longer than this is not looked for (a whole file's content fits)."""
MAX_PARSE_TRIES = 64
"""Closing parentheses tried as the call's end before giving up (each try parses the text so far)."""


def call_pattern(names: Iterable[str]) -> re.Pattern[str] | None:
    """Where a call to one of `names` may start: the name (not after a letter, digit, `_` or `.`), then `(`."""
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return re.compile(rf"(?<![\w.])(?:{alternatives})\(") if alternatives else None


def python_call_starts(text: str, offered: OfferedTools) -> Iterator[int]:
    pattern = call_pattern(offered)
    if pattern is not None:
        yield from (match.start() for match in pattern.finditer(text))


def python_call_at(text: str, start: int, offered: OfferedTools) -> tuple[ParsedToolCall, int] | None:
    """The call written at `start` and where it ends, or None if it is no call to an offered tool."""
    name = text[start : text.index("(", start)]
    if name not in offered:
        return None
    limit = min(len(text), start + MAX_CALL_CHARS)
    pos = start + len(name) + 1
    for _ in range(MAX_PARSE_TRIES):
        close = text.find(")", pos, limit)
        if close < 0:
            return None
        try:
            node = ast.parse(text[start : close + 1], mode="eval").body
        except SyntaxError:
            pos = close + 1
            continue
        arguments = _arguments(node, offered[name])
        if arguments is None:
            return None
        return ParsedToolCall(name=name, arguments=orjson.dumps(arguments).decode()), close + 1
    return None


def balanced_end(text: str, start: int) -> int | None:
    """The end of the bracketed value opening at `start` (`{` or `[`), strings in either quote skipped; None when
    it does not close within MAX_CALL_CHARS."""
    closing = {"{": "}", "[": "]"}
    if text[start : start + 1] not in closing:
        return None
    depth, quote, escaped = 0, "", False
    for index in range(start, min(len(text), start + MAX_CALL_CHARS)):
        char = text[index]
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def _arguments(node: ast.expr, schema: object) -> dict[str, Any] | None:
    if not isinstance(node, ast.Call) or not isinstance(schema, dict):
        return None
    declared = list(schema.get("properties") or {})
    if len(node.args) > len(declared):
        return None
    try:
        arguments = {declared[index]: ast.literal_eval(value) for index, value in enumerate(node.args)}
        for keyword in node.keywords:
            if keyword.arg is None or keyword.arg in arguments:
                return None
            arguments[keyword.arg] = ast.literal_eval(keyword.value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    arguments = coerce_arguments(schema, arguments)
    return None if argument_errors(schema, arguments) else arguments
