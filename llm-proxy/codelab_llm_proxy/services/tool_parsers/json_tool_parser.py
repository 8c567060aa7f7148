"""Bare-JSON tool calls, as Qwen2.5-Coder writes them when it is told to answer with a JSON object.

The answer is entirely one or more call objects `{"name": ..., "arguments": {...}}` (also `"parameters"`, or
OpenAI's `{"type": "function", "function": {...}}`), alone, as a list, one after another, inside a ```json fence
or inside Qwen's `<tool_call>` tags. Anything else, any object naming a tool that was not offered, or any prose
around the JSON makes the whole answer text.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from codelab_llm_proxy.services.tool_parsers.base import ParsedToolCall, PrefixKind, register_tool_parser
from codelab_llm_proxy.services.tool_parsers.gbnf import tool_call_grammar
from codelab_llm_proxy.services.tool_parsers.json_prompting import flatten_tool_turns, with_tools_section

_FENCE = "```"
_FENCE_LANG = re.compile(r"```([A-Za-z0-9_+-]*)")
_JSON_FENCE_LANGS = ("", "json")
_TAG_OPEN, _TAG_CLOSE = "<tool_call>", "</tool_call>"
_CALL_KEYS = frozenset({"name", "arguments", "parameters", "type", "id"})
_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"\s*")


@register_tool_parser("json", "qwen2.5-coder", "bare-json")
class JsonToolParser:
    def prepare_request(self, body: dict[str, Any], *, constrain: bool) -> dict[str, Any]:
        """Tools as a listing in the system message instead of native `tools`; see `json_prompting`."""
        tools = body.get("tools")
        if not tools:
            return body
        choice = body.get("tool_choice")
        prepared = {k: v for k, v in body.items() if k not in ("tools", "tool_choice", "parallel_tool_calls")}
        if choice == "none":
            prepared["messages"] = flatten_tool_turns(body["messages"])
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

    def classify_prefix(self, text: str) -> PrefixKind:
        head = text.lstrip()
        if not head:
            return "undecided"
        if head[0] in "{[":
            return _classify_json_start(head)
        if head.startswith(_FENCE):
            return _classify_fence(head)
        if _FENCE.startswith(head) or _TAG_OPEN.startswith(head):
            return "undecided"
        if head.startswith(_TAG_OPEN):
            return _classify_json_start(head[len(_TAG_OPEN) :].lstrip())
        return "text"

    def extract(self, text: str, offered: frozenset[str]) -> list[ParsedToolCall] | None:
        if not offered:
            return None
        values = _json_values(text)
        if not values:
            return None
        calls: list[ParsedToolCall] = []
        for value in values:
            items = value if isinstance(value, list) else [value]
            if not items:
                return None
            for item in items:
                call = _as_call(item, offered)
                if call is None:
                    return None
                calls.append(call)
        return calls


def _classify_json_start(head: str) -> PrefixKind:
    """`{` must open an object with a string key, `[` a list of objects; `[link](...)` or `{x}` are text."""
    if not head:
        return "undecided"
    if head[0] == "[":
        rest = head[1:].lstrip()
        if not rest:
            return "undecided"
        return _classify_json_start(rest) if rest[0] == "{" else "text"
    if head[0] != "{":
        return "text"
    rest = head[1:].lstrip()
    if not rest:
        return "undecided"
    return "call" if rest[0] == '"' else "text"


def _classify_fence(head: str) -> PrefixKind:
    match = _FENCE_LANG.match(head)
    assert match is not None
    lang, rest = match.group(1).lower(), head[match.end() :]
    if not rest:
        return "undecided" if "json".startswith(lang) else "text"
    if lang not in _JSON_FENCE_LANGS:
        return "text"
    return _classify_json_start(rest.lstrip())


def _json_values(text: str) -> list[Any] | None:
    """The JSON values of `text` when only whitespace, json fences and `<tool_call>` tags surround them."""
    values: list[Any] = []
    in_fence = in_tag = False
    pos, end = 0, len(text)
    while True:
        match = _WHITESPACE.match(text, pos)
        pos = match.end() if match else pos
        if pos >= end:
            return values
        if text.startswith(_FENCE, pos):
            if in_fence:
                in_fence, pos = False, pos + len(_FENCE)
                continue
            lang = _FENCE_LANG.match(text, pos)
            if in_tag or lang is None or lang.group(1).lower() not in _JSON_FENCE_LANGS:
                return None
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
        except json.JSONDecodeError:
            return None
        values.append(value)


def _as_call(value: Any, offered: frozenset[str]) -> ParsedToolCall | None:
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
    if not isinstance(arguments, dict):
        return None
    return ParsedToolCall(name=name, arguments=orjson.dumps(arguments).decode())
