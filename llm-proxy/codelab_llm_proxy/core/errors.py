"""The proxy's typed errors, answered in the project's envelope `{"error": {"message", "type", "code"}}`.

Codes follow OpenAI's spelling (`model_not_found`, `invalid_request`) since OpenAI clients read them.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from codelab_common.http_errors import error_body, error_response
from codelab_common.http_errors import install_error_handlers as install_common_error_handlers
from codelab_llm_proxy.core.redaction import Redactor


class ProxyError(Exception):
    """An error answered to the caller with `status` and the OpenAI error envelope."""

    status: int = 500
    type: str = "server_error"
    code: str = "internal_error"
    retry_after: float | None = None
    """Seconds the caller should wait before trying again; sent as `Retry-After` when set."""

    def __init__(self, message: str, *, status: int | None = None, type: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if type is not None:
            self.type = type
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code)

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class InvalidRequest(ProxyError):
    status, type, code = 400, "invalid_request_error", "invalid_request"


class ModelNotFound(ProxyError):
    status, type, code = 404, "invalid_request_error", "model_not_found"


class UpstreamError(ProxyError):
    """The model's server failed (connect error, 5xx, bad answer): 502.

    `message` is the proxy's own sentence; what the upstream said travels apart (`upstream_type`,
    `upstream_message`) and reaches the client only through `summarize`, cleaned and bounded."""

    status, type, code = 502, "upstream_error", "upstream_error"
    retryable: bool = True
    """False when trying the same deployment again cannot help (e.g. it rejects our credentials); the router then
    moves on to the next deployment at once."""

    def __init__(self, message: str, *, upstream_type: str = "", upstream_message: str = "", **options: Any) -> None:
        super().__init__(message, **options)
        self.upstream_type = upstream_type
        self.upstream_message = upstream_message

    def summarize(self, redactor: Redactor) -> UpstreamError:
        """Append the upstream's error type and message, as `redactor` lets them through, to `message` (once)."""
        kind = redactor.kind(self.upstream_type)
        words = redactor.summary(self.upstream_message)
        if kind:
            self.message = f"{self.message} ({kind})"
        if words:
            self.message = f"{self.message}: {words}"
        self.upstream_type = self.upstream_message = ""
        return self


class UpstreamTimeout(UpstreamError):
    status, type, code = 504, "upstream_error", "upstream_timeout"


class UpstreamRejected(UpstreamError):
    """The upstream refused the request (a 4xx other than 401/403, or an error saying the request is at fault: context
    too long, content filtered, invalid tool schema): its status is kept. Except for 429 (the upstream's rate limit),
    the request itself is at fault: not retried, not failed over, no mark against the deployment's circuit breaker."""

    type, code = "invalid_request_error", "upstream_rejected"


class NoDeploymentAvailable(UpstreamError):
    """Every deployment of the model (and of its fallbacks) is out of rotation: its circuit breaker is open."""

    status, type, code = 503, "service_unavailable", "deployments_unavailable"


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves in the envelope; FastAPI's 422 becomes 400."""
    install_common_error_handlers(app, validation_code=lambda _: InvalidRequest.code)

    @app.exception_handler(ProxyError)
    async def _proxy_error(_: Request, exc: ProxyError) -> Response:
        response = error_response(exc.status, exc.message, exc.type, exc.code)
        response.headers.update(exc.headers())
        return response
