"""Whether a model's answer may end the turn, or reports work that was not done.

Small models end a turn early in a few recognisable ways; each is told back to the model, which then usually does
the work:

- it answers right after a change failed (an edit whose old text is not in the file), as if it had worked;
- it says it changed a file that no tool changed in this turn (a rename done in one of the two files);
- it announces a call ("I will call edit_file", "call write_file(...)") instead of making it.

A user's rejection is never treated as a failure: the model was told not to repeat the call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

CHANGE_TOOLS = frozenset({"write_file", "edit_file", "apply_patch"})
_LOOKING = frozenset({"read_file", "list_files"})
"""Tools an answer may name while reporting what it found (unless it writes a call to them: `list_files(...)`)."""
_PROMISE = re.compile(
    r"\b(?:I will|I'll|let me|I need to|I am going to|I'm going to)\s+(?:now\s+|first\s+)?"
    r"(?:call|use|run|read|edit|write|create|change|fix|retry|try|copy|update|add|modify|search|open|check)\b",
    re.IGNORECASE,
)
"""An answer that announces a step instead of taking it."""
_CLAIM = re.compile(
    r"\b(?:changed|renamed|updated|fixed|added|replaced|modified|edited|wrote|written|created|removed|deleted)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?](?:\s+|$)|\n")
"""Where a sentence ends (not the dot inside `app.py`)."""
_PATH = re.compile(r"[\w./-]*\w\.[A-Za-z0-9]{1,8}\b")


def unfinished(answer: str, turn: list[dict[str, Any]], offered: Iterable[str]) -> str | None:
    """What to tell the model when `answer` cannot end the turn yet; None when it may."""
    failed = _failed_change(turn)
    if failed is not None:
        return _retry_request(*failed)
    changed = _changed_paths(turn)
    unchanged = _claimed_but_unchanged(answer, turn, changed)
    if unchanged:
        files = " and ".join(unchanged)
        return (
            f"You said you changed {files}, but no tool changed {'it' if len(unchanged) == 1 else 'them'} in this "
            "request. Make that change now, with one call per file; then answer."
        )
    if changed:
        return None
    named = [name for name in offered if f"{name}(" in answer or (name not in _LOOKING and name in answer)]
    if named or _PROMISE.search(answer):
        tool = f" ({named[0]})" if named else ""
        return (
            f"You said what you would do{tool} but did not do it: no tool ran. Make the call now, with only the "
            "call in your answer; if no tool is needed, answer my request directly."
        )
    return None


def _claimed_but_unchanged(answer: str, turn: list[dict[str, Any]], changed: set[str]) -> list[str]:
    """Files of the project that the answer says it changed and no change tool touched this turn."""
    request = turn[0].get("content") if turn else None
    if not isinstance(request, str):
        return []
    claimed = {
        path.removeprefix("./")
        for sentence in _SENTENCE_END.split(answer)
        if _CLAIM.search(sentence)
        for path in _PATH.findall(sentence)
    }
    return sorted(path for path in claimed if path not in changed and _names_a_file(request, path))


def _names_a_file(request: str, path: str) -> bool:
    """Whether the turn's user message (with its file list) names `path` as a file."""
    return re.search(rf"(?<![\w./-]){re.escape(path)}(?![\w/-])", request) is not None


def _changed_paths(turn: list[dict[str, Any]]) -> set[str]:
    """Paths a change tool changed in this turn ("" for a change without one path: a patch)."""
    changed = set()
    for call, outcome in _outcomes(turn):
        if call["name"] in CHANGE_TOOLS and not (isinstance(outcome, dict) and outcome.get("error")):
            arguments = _loads(call["arguments"])
            path = arguments.get("path") if isinstance(arguments, dict) else None
            changed.add(str(path or "").removeprefix("./"))
    return changed


def _failed_change(turn: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(tool, error) of a change in the turn's last tool round that failed for a reason other than the user's
    rejection; None if every change of that round went through."""
    last_round = [message for message in turn if message.get("tool_calls")][-1:]
    round_ids = {call["id"] for message in last_round for call in message["tool_calls"]}
    for call, outcome in _outcomes(turn):
        if call["id"] not in round_ids or call["name"] not in CHANGE_TOOLS or not isinstance(outcome, dict):
            continue
        if outcome.get("error") and not outcome.get("rejected_by_user"):
            return call["name"], str(outcome["error"])
    return None


def _outcomes(turn: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], Any]]:
    """Each tool call of the turn (`id`, `name`, `arguments`) with its parsed result."""
    calls = {
        call["id"]: {"id": call["id"], **call["function"]}
        for message in turn
        for call in message.get("tool_calls") or ()
    }
    for message in turn:
        call = calls.get(message.get("tool_call_id", "")) if message.get("role") == "tool" else None
        if call is not None:
            yield call, _loads(message.get("content") or "")


def _retry_request(tool: str, error: str) -> str:
    """What the model is told when it answers right after a failed change."""
    how = "Call the tool again with corrected arguments"
    if tool == "edit_file":
        how += ": copy old_text exactly from the file's current text, or write the whole file with write_file"
    return f"Your {tool} call failed, so nothing was changed: {error[:400]}. {how}. Do not tell me it is done."


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return text
