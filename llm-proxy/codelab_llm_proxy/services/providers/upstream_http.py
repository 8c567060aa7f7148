"""HTTP to model servers, shared by every provider: the client timeouts, one POST, and typed errors.

Failures become `UpstreamError`s the serving and routing layers understand: connect errors and 5xx → 502,
silence longer than the model's read timeout → 504, an upstream refusing our credentials → 502 (not retried),
other 4xx keep their status (`UpstreamRejected`), as does an answer naming the request's fault (context length,
content filter, invalid tool schema) whatever its status; an upstream `Retry-After` rides along for the router.
Each error's message is the proxy's own sentence naming the model and deployment, never a host or URL; the
upstream's error type and message ride apart, for the router to clean and bound (`core.redaction`).

Each request is one try of one deployment and, when the proxy traces, one client span (a retry or a failover is a
span of its own), whose `traceparent` goes to the model server too.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
from opentelemetry.trace import Span, SpanKind

from codelab_common import tracing
from codelab_llm_proxy.core.errors import UpstreamError, UpstreamRejected, UpstreamTimeout
from codelab_llm_proxy.core.model_registry import ModelConfig
from codelab_llm_proxy.services.routing.retry import parse_retry_after

BAD_REQUEST = 400
MAX_ERROR_TEXT_BYTES = 4096
"""Of a non-JSON error body (an HTML page from a reverse proxy), only this much is read for its message."""
REQUEST_FAULT_KINDS = frozenset(
    {
        "400",
        "404",
        "413",
        "422",
        "invalid_request_error",
        "BadRequestError",
        "context_length_exceeded",
        "exceed_context_size_error",
        "content_filter",
        "content_policy_violation",
        "request_too_large",
        "not_found_error",
    }
)
"""Error types and codes (OpenAI, Azure, Anthropic, vLLM, llama.cpp) that blame the request, not the server."""
_REQUEST_FAULT_WORDS = re.compile(
    r"(?i)context[ _]length|maximum context|exceeds? the (available )?context|prompt is too long"
    r"|content[ _](filter|management policy)|invalid schema for function|tool schema"
)
_MARKUP = re.compile(r"<[^>]*>")


def client_timeout(model: ModelConfig) -> aiohttp.ClientTimeout:
    """No total limit here: the router enforces first-token and total limits itself, and then the idle one."""
    return aiohttp.ClientTimeout(
        total=None,
        connect=model.connect_timeout_s,
        sock_connect=model.connect_timeout_s,
        sock_read=max(model.read_timeout_s, model.first_token_timeout_s or 0),
    )


async def post(
    session: aiohttp.ClientSession,
    model: ModelConfig,
    url: str,
    data: bytes,
    headers: Mapping[str, str],
    timeout: aiohttp.ClientTimeout,
) -> bytes:
    """POST and read the whole answer; a non-200 answer or a transport failure raises a typed error."""
    span = _upstream_span(model)
    try:
        with tracing.ending(span):
            async with session.post(url, data=data, headers=_traced(headers, span), timeout=timeout) as response:
                tracing.note(span, {"http.response.status_code": response.status})
                payload = await response.read()
                if response.status != 200:
                    raise status_error(model, response.status, payload, response.headers)
                return payload
    except UpstreamError:
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise transport_error(model, exc) from exc


@asynccontextmanager
async def open_stream(
    session: aiohttp.ClientSession,
    model: ModelConfig,
    url: str,
    data: bytes,
    headers: Mapping[str, str],
    timeout: aiohttp.ClientTimeout,
) -> AsyncIterator[aiohttp.StreamReader]:
    """The body of a 200 streaming answer, line by line; failures opening or reading it raise typed errors."""
    span = _upstream_span(model)
    try:
        with tracing.ending(span):
            async with session.post(url, data=data, headers=_traced(headers, span), timeout=timeout) as response:
                tracing.note(span, {"http.response.status_code": response.status})
                if response.status != 200:
                    raise status_error(model, response.status, await response.read(), response.headers)
                yield response.content
    except UpstreamError:
        raise
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise transport_error(model, exc) from exc


def _upstream_span(model: ModelConfig) -> Span | None:
    return tracing.start_span(
        f"chat {model.upstream_name}",
        kind=SpanKind.CLIENT,
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": model.provider,
            "gen_ai.request.model": model.upstream_name,
            "codelab.deployment": model.deployment_id or model.name,
        },
    )


def _traced(headers: Mapping[str, str], span: Span | None) -> Mapping[str, str]:
    return headers if span is None else {**headers, **tracing.trace_headers(span)}


def transport_error(model: ModelConfig, exc: BaseException) -> UpstreamError:
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return UpstreamTimeout(f"model server for {who(model)} did not answer within {model.read_timeout_s:g} s")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(f"cannot reach the model server for {who(model)}: {_reason(exc)}")
    return UpstreamError(f"model server for {who(model)} failed ({type(exc).__name__})", upstream_message=str(exc))


def status_error(
    model: ModelConfig, status: int, payload: bytes, headers: Mapping[str, str] | None = None
) -> UpstreamError:
    """The typed error for an upstream's non-200 answer, carrying its `Retry-After` (for the router) if given."""
    error = _status_error_of(model, status, payload)
    if headers is not None:
        error.retry_after = parse_retry_after(headers.get("Retry-After"))
    return error


def answer_error(model: ModelConfig, error: Any, where: str) -> UpstreamError:
    """The typed error for an `error` inside a 200 answer or a stream (`where` says which, for the message)."""
    kind, message = _error_parts(error)
    if _names_request_fault(error, kind, message):
        return UpstreamRejected(
            f"model server for {who(model)} refused the request {where}",
            status=BAD_REQUEST,
            upstream_type=kind,
            upstream_message=message,
        )
    return UpstreamError(f"model server for {who(model)} failed {where}", upstream_type=kind, upstream_message=message)


def who(model: ModelConfig) -> str:
    """The model, and its deployment when that has a name of its own, as error messages name them."""
    if model.deployment_id and model.deployment_id != model.name:
        return f"{model.name!r} (deployment {model.deployment_id!r})"
    return repr(model.name)


def _status_error_of(model: ModelConfig, status: int, payload: bytes) -> UpstreamError:
    error = error_of(payload)
    kind, message = _error_parts(error)
    details = {"upstream_type": kind, "upstream_message": message}
    if status in (401, 403):
        rejected = UpstreamError(
            f"model server for {who(model)} rejected the proxy's credentials with HTTP {status}", **details
        )
        rejected.retryable = False
        return rejected
    if 400 <= status < 500 or _names_request_fault(error, kind, message):
        return UpstreamRejected(
            f"model server for {who(model)} refused the request with HTTP {status}",
            status=status if status < 500 else BAD_REQUEST,
            **details,
        )
    return UpstreamError(f"model server for {who(model)} failed with HTTP {status}", **details)


def _error_parts(error: Any) -> tuple[str, str]:
    """An upstream error's type (or code) and message: `{"type", "code", "message"}`, or just a text."""
    if isinstance(error, dict):
        kind = next((v for v in (error.get("type"), error.get("code")) if isinstance(v, str) and v), "")
        return kind, str(error.get("message") or error.get("detail") or "")
    return "", "" if error is None else str(error)


def _names_request_fault(error: Any, kind: str, message: str) -> bool:
    """Whether an upstream's error says the request itself is at fault (its type, code or wording)."""
    codes = {kind}
    if isinstance(error, dict):
        codes |= {str(error.get(key)) for key in ("type", "code") if error.get(key) is not None}
    return bool(codes & REQUEST_FAULT_KINDS) or _REQUEST_FAULT_WORDS.search(message) is not None


def _reason(exc: aiohttp.ClientConnectorError) -> str:
    """Why a connection failed, without the address (an OS error's text names it; its errno does not)."""
    errno = exc.os_error.errno
    return os.strerror(errno) if isinstance(errno, int) and errno > 0 else type(exc).__name__


def error_of(payload: bytes) -> Any:
    """The error in an upstream's error body (`{"error": ...}`, `{"detail": ...}`, or the object itself), or its
    text when it is no JSON (markup removed)."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return _MARKUP.sub(" ", payload[:MAX_ERROR_TEXT_BYTES].decode(errors="replace"))
    if isinstance(body, dict):
        return body.get("error", body.get("detail", body))
    return body
