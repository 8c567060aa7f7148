"""What the model reads back about each tool call: compact JSON in a `tool` message.

Results and errors both go back to the model; a user's rejection is spelled out so a small model does not
simply try the same call again.
"""

from __future__ import annotations

from typing import Any

import orjson

from codelab_common.protocol.tools import ToolSpec
from codelab_common.tool_arguments import argument_errors, coerce_arguments, declared_only

REJECTION_MARKERS = ("Операция отклонена", "rejected by user", "user rejected", "rejected by the user")


def is_rejection(error: str) -> bool:
    lowered = error.lower()
    return any(marker.lower() in lowered for marker in REJECTION_MARKERS)


def result_content(result: dict[str, Any] | str | None, error: str | None, limit: int) -> str:
    """The tool message for a client's `tool_result`."""
    if error is not None:
        if is_rejection(error):
            body: dict[str, Any] = {
                "error": error,
                "rejected_by_user": True,
                "note": "The user rejected this call. Do not repeat it; continue without it or ask the user.",
            }
        else:
            body = {"error": error}
        return truncate(_dumps(body), limit)
    if isinstance(result, str):
        return truncate(result, limit)
    return truncate(_dumps({"result": None} if result is None else result), limit)


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
