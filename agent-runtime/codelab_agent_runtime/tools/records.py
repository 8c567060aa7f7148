"""Tool calls and tool results that a model writes into its answer as text, where no tool ran.

Models that write their calls as text (llm-proxy recovers the well-formed ones) sometimes write a call that could
not be recovered, or invent a tool's result and answer from it. Such text must never reach the user as if a tool
had run: the loop stops showing an answer at the first record in it and tells the model what went wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

_TAGS = r"</?tool_call>|</?tool_response>"
_RESULT_KEYS = r"\{\s*\"(?:success|exit_code|bytes_written|lines_read|stdout)\"\s*:"
_RESULT_INSIDE = r"\{[^{}]{0,200}?\"(?:exit_code|bytes_written|lines_read|duration_ms|timed_out)\"\s*:"
"""A result object whose tell-tale key is not its first (`{"name": "pip install", "exit_code": 0, ...}`)."""
_ANY_CALL = r"\{\s*\"name\"\s*:\s*\"[^\"\n]{1,80}\"\s*,\s*\"(?:arguments|parameters)\"\s*:"
_DECODER = json.JSONDecoder()
_OPENING = re.compile(r"^\s*(?:```[A-Za-z]*|<tool_call>)?\s*")


@dataclass(frozen=True, slots=True)
class RecordFinder:
    """Finds records in answers to a turn that offers the tools named."""

    pattern: re.Pattern[str]

    @classmethod
    def for_tools(cls, names: Iterable[str]) -> RecordFinder:
        """Records: call and result tags, result objects, and call objects — of an offered tool, or of anything
        with arguments (small models "call" functions of the user's code that way)."""
        offered = "|".join(re.escape(name) for name in names)
        call = rf"\{{\s*\"name\"\s*:\s*\"(?:{offered})\"" if offered else None
        patterns = (_TAGS, _RESULT_KEYS, _RESULT_INSIDE, _ANY_CALL, call)
        return cls(re.compile("|".join(p for p in patterns if p)))

    def find(self, text: str, start: int = 0) -> int | None:
        """Where the first record in `text` begins (searching from `start`), or None."""
        match = self.pattern.search(text, start)
        return match.start() if match else None


def call_written_as_text(text: str) -> tuple[str, object] | None:
    """The `(name, arguments)` of a call object at the start of `text` (after an optional fence or call tag)."""
    body = _OPENING.sub("", text, count=1)
    try:
        value, _ = _DECODER.raw_decode(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    return value["name"], value.get("arguments", value.get("parameters"))
