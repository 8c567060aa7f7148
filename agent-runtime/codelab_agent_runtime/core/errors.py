"""How agent-runtime names a bad request body: a bad `session_id` is INVALID_SESSION, anything else INVALID_FORMAT."""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError

from codelab_common.protocol import ErrorCode


def validation_code(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if errors and all(tuple(error.get("loc", ()))[:2] == ("body", "session_id") for error in errors):
        return ErrorCode.INVALID_SESSION.value
    return ErrorCode.INVALID_FORMAT.value
