"""The project's one HTTP error envelope, `{"error": {"message", "type", "code"}}`, and handlers that enforce it.

FastAPI answers bad bodies with a 422 `{"detail": [...]}` and unknown routes with `{"detail": "Not Found"}`;
`install_error_handlers` turns both into the envelope (the 422 into a 400) so every caller parses one shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

_HTTP_CODES = {401: "UNAUTHORIZED", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "TOO_LARGE"}


def error_body(message: str, type: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "code": code}}


def error_response(status: int, message: str, type: str, code: str) -> Response:
    return Response(orjson.dumps(error_body(message, type, code)), status_code=status, media_type="application/json")


def describe_validation_errors(errors: Sequence[Any]) -> str:
    """pydantic's error list as one readable line: `message.content: String should have at least 1 character`."""
    parts = []
    for error in list(errors)[:5]:
        location = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        message = str(error.get("msg", "invalid"))
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts) or "invalid request body"


def install_error_handlers(
    app: FastAPI,
    *,
    validation_code: Callable[[RequestValidationError], str] = lambda _: "INVALID_FORMAT",
) -> None:
    """Route validation and HTTP errors through the envelope; `validation_code` picks the code of a bad body."""

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        message = describe_validation_errors(exc.errors())
        return error_response(400, message, "invalid_request_error", validation_code(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        return error_response(exc.status_code, str(exc.detail), "invalid_request_error", code)
