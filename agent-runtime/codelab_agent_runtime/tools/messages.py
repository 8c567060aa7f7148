"""What the model reads back about each tool call: compact JSON in a `tool` message.

Results and errors both go back to the model; a user's rejection (a typed decision, never guessed from an error's
wording) is spelled out with the user's feedback, so a small model does not simply try the same call again.
"""

from __future__ import annotations

from typing import Any

import orjson

from codelab_common.protocol.tools import ToolSpec
from codelab_common.tool_arguments import argument_errors, coerce_arguments, declared_only


def result_content(result: dict[str, Any] | str | None, error: str | None, limit: int) -> str:
    """The tool message for a client's `tool_result`."""
    if error is not None:
        return truncate(_dumps({"error": error}), limit)
    if isinstance(result, str):
        return truncate(result, limit)
    return truncate(_dumps({"result": None} if result is None else result), limit)


def rejected_content(feedback: str | None) -> str:
    """The tool message for a call the user rejected: the user's own words first, as the instruction to follow."""
    if feedback:
        body: dict[str, Any] = {
            "error": f"The user did not allow this call, so it did not run. The user says: {feedback}",
            "rejected_by_user": True,
            "user_feedback": feedback,
            "note": "Do what the user says. Do not make this call again.",
        }
    else:
        body = {
            "error": "The user did not allow this call, so it did not run.",
            "rejected_by_user": True,
            "note": "Do not make this call again; continue without it or ask the user what they want.",
        }
    return _dumps(body)


def edited_note(arguments: dict[str, Any]) -> str:
    """Put before the result of a call the user edited: the model must know what actually ran."""
    return f"[The user edited this call before it ran; it ran with these arguments: {_dumps(arguments)}]\n"


def denied_content(rule: str) -> str:
    """The tool message for a call the deployment's policy does not allow."""
    note = "This call is not allowed here and was not run; do not try it again. Continue without it."
    return _dumps({"error": f"denied by the approval policy ({rule})", "note": note})


def error_content(message: str) -> str:
    """A tool message for a call that was never forwarded to the client (the model's own mistake)."""
    return _dumps({"error": message})


def repeated_content(earlier: str) -> str:
    """The answer to a call the model already made this turn: the earlier result again, and a nudge onwards."""
    note = "You already made this call in this request; its result is repeated here. Do not call it again: use it "
    note += "to take the next step, or answer the user."
    return f"{earlier}\n[{note}]"


def timeout_content(after_s: float) -> str:
    return _dumps({"error": f"timed out: no result arrived within {after_s:.0f} s"})


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[truncated: {len(text) - limit} more characters not shown]"


class InvalidArguments(ValueError):
    """The model's arguments cannot be forwarded; the message is told back to the model."""


def parse_arguments(spec: ToolSpec, raw: str) -> dict[str, Any]:
    """The model's arguments string as a JSON object that fits the tool's schema, undeclared keys dropped."""
    try:
        arguments = orjson.loads(raw) if raw.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise InvalidArguments(f"arguments of {spec.name} are not valid JSON ({exc}); you sent: {raw[:300]}") from exc
    if not isinstance(arguments, dict):
        raise InvalidArguments(f"arguments of {spec.name} must be a JSON object; you sent: {raw[:300]}")
    arguments = coerce_arguments(spec.parameters, arguments)
    errors = argument_errors(spec.parameters, arguments)
    if errors:
        expected = ", ".join(spec.parameters.get("properties") or {})
        raise InvalidArguments(f"{spec.name}: {'; '.join(errors)} (its arguments: {expected})")
    return declared_only(spec.parameters, arguments)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
