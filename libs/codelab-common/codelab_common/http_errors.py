"""The project's one HTTP error envelope, `{"error": {"message", "type", "code"}}`, and handlers that enforce it.

FastAPI answers bad bodies with a 422 `{"detail": [...]}` and unknown routes with `{"detail": "Not Found"}`;
`install_error_handlers` turns both into the envelope (the 422 into a 400) so every caller parses one shape, and has
the OpenAPI document say so (`document_errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from codelab_common.auth import INTERNAL_AUTH_HEADER
from codelab_common.health import HEALTH_PATHS
from codelab_common.openapi import REF_TEMPLATE, edit_openapi

_HTTP_CODES = {401: "UNAUTHORIZED", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "TOO_LARGE"}


class ErrorDetail(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    message: str
    """For a person: what was wrong."""
    type: str
    """The kind: `invalid_request_error`, `authentication_error`, `server_error`, ..."""
    code: str
    """For a program: e.g. INVALID_FORMAT, UNAUTHORIZED, TOO_LARGE, INVALID_SESSION (llm-proxy: OpenAI's codes)."""


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


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
    edit_openapi(app, document_errors)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> Response:
        message = describe_validation_errors(exc.errors())
        return error_response(400, message, "invalid_request_error", validation_code(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        response = error_response(exc.status_code, str(exc.detail), "invalid_request_error", code)
        response.headers.update(exc.headers or {})  # a 405's `Allow`, which HTTP requires
        return response


SECURITY_SCHEME = "internalAuth"
_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
_FASTAPI_422_SCHEMAS = ("HTTPValidationError", "ValidationError")


def document_errors(document: dict[str, Any]) -> None:
    """Make an OpenAPI document declare the errors every service answers, all in the envelope.

    Every service mounts the internal-auth check (all but /health and /ready: 401, and the key as a security scheme),
    the body limit (an operation with a body: 413) and these handlers (a bad body or parameter: 400, where FastAPI
    declares its 422). Errors a route declares itself (`responses={404: {"description": ...}}`) get the envelope as
    their content unless they name one."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (ErrorResponse, ErrorDetail):
        schema = model.model_json_schema(ref_template=REF_TEMPLATE)
        schema.pop("$defs", None)
        schemas.setdefault(model.__name__, schema)
    components.setdefault("securitySchemes", {})[SECURITY_SCHEME] = {
        "type": "apiKey",
        "in": "header",
        "name": INTERNAL_AUTH_HEADER,
    }
    envelope = REF_TEMPLATE.format(model=ErrorResponse.__name__)
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            has_body = "requestBody" in operation
            if responses.pop("422", None) is not None or has_body:
                responses.setdefault("400", {"description": "A bad body or parameter (INVALID_FORMAT, ...)"})
            if has_body:
                responses.setdefault("413", {"description": "The body is over the service's max_body_bytes"})
            if path not in HEALTH_PATHS:
                responses.setdefault("401", {"description": f"No {INTERNAL_AUTH_HEADER} header, or a wrong key"})
                operation.setdefault("security", [{SECURITY_SCHEME: []}])
            for status, response in responses.items():
                if status.startswith(("4", "5")) and "content" not in response:
                    response["content"] = {"application/json": {"schema": {"$ref": envelope}}}
    text = orjson.dumps(document["paths"]).decode()
    for name in _FASTAPI_422_SCHEMAS:
        if REF_TEMPLATE.format(model=name) not in text:
            schemas.pop(name, None)
