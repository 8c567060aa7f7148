"""HTTP to model servers, shared by every provider: the client timeouts, one POST, and typed errors.

Failures become `UpstreamError`s the serving and routing layers understand: connect errors and 5xx → 502,
silence longer than the model's read timeout → 504, an upstream refusing our credentials → 502 (not retried),
other 4xx keep their status and the upstream's message; an upstream `Retry-After` rides along for the router.

Each request is one try of one deployment and, when the proxy traces, one client span (a retry or a failover is a
span of its own), whose `traceparent` goes to the model server too.
"""

from __future__ import annotations

import asyncio
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
        return UpstreamTimeout(f"model server for {model.name!r} did not answer within {model.read_timeout_s:g} s")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(f"cannot reach the model server for {model.name!r} at {model.base_url}")
    return UpstreamError(f"model server for {model.name!r} failed: {type(exc).__name__}: {exc}")


def status_error(
    model: ModelConfig, status: int, payload: bytes, headers: Mapping[str, str] | None = None
) -> UpstreamError:
    """The typed error for an upstream's non-200 answer, carrying its `Retry-After` (for the router) if given."""
    error = _status_error_of(model, status, payload)
    if headers is not None:
        error.retry_after = parse_retry_after(headers.get("Retry-After"))
    return error


def _status_error_of(model: ModelConfig, status: int, payload: bytes) -> UpstreamError:
    try:
        message = error_message(orjson.loads(payload))
    except orjson.JSONDecodeError:
        message = payload[:500].decode(errors="replace").strip()
    message = message or f"HTTP {status}"
    if status in (401, 403):
        error = UpstreamError(f"model server for {model.name!r} rejected the proxy's credentials: {message}")
        error.retryable = False
        return error
    if 400 <= status < 500:
        return UpstreamRejected(message, status=status)
    return UpstreamError(f"model server for {model.name!r} failed with HTTP {status}: {message}")


def error_message(answer: Any) -> str:
    """The message of an upstream's error body (`{"error": {"message"}}`, `{"error": "..."}`, `{"detail"}`)."""
    if not isinstance(answer, dict):
        return ""
    error = answer.get("error", answer.get("detail"))
    if isinstance(error, dict):
        return str(error.get("message") or "")
    return str(error or "")
