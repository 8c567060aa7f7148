"""Behaviour of `POST /v1/chat/completions`: validate, route to the model's provider, relay the answer.

Errors before the first byte of an answer are HTTP errors in OpenAI's envelope (400 bad body, 404 unknown model,
4xx passed on from the upstream, 502 upstream failure, 504 upstream timeout). Once a stream has started, a
failure becomes one in-band event `data: {"error": {...}}` and the stream ends without `[DONE]`. A client that
disconnects cancels the generator, which closes the upstream request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import orjson
import structlog
from fastapi.responses import Response, StreamingResponse
from pydantic import ValidationError

from codelab_common.http_errors import describe_validation_errors
from codelab_llm_proxy.api.chat_completions.protocol import ChatCompletionRequest
from codelab_llm_proxy.core.errors import InvalidRequest, ModelNotFound, ProxyError
from codelab_llm_proxy.core.model_registry import ModelConfig, ModelRegistry
from codelab_llm_proxy.services.observability import observe_completion, observe_error, observe_route, observe_upstream
from codelab_llm_proxy.services.providers import Provider
from codelab_llm_proxy.services.rate_limit import UNLIMITED, Caller, RateLimiter, Ticket, UsageTap
from codelab_llm_proxy.services.tool_parsers import StreamingToolCallExtractor, ToolParser, extract_into_completion

log = structlog.get_logger(__name__)

_DONE = b"data: [DONE]\n\n"
CLIENT_CLOSED_REQUEST = 499
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class ChatCompletionService:
    def __init__(
        self,
        registry: ModelRegistry,
        providers: Mapping[str, Provider],
        tool_parsers: Mapping[str, ToolParser],
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        self._registry = registry
        self._rate_limiter = rate_limiter
        self._providers = providers
        self._tool_parsers = tool_parsers
        self.in_flight = 0
        """Requests being answered; drops as soon as a client's disconnect has closed its upstream request."""

    async def create(
        self, raw_body: bytes, disconnected: Callable[[], Awaitable[object]], caller: Caller | None = None
    ) -> Response:
        """Answer one request; `disconnected()` completes when the client goes away (then the work is cancelled).

        `caller` (who sent it) picks the rate-limit buckets; over a limit this raises a 429 before any upstream work.
        """
        body, request = self._validate(raw_body)
        model = self._registry.get(request.model)
        if model is None:
            names = ", ".join(m.name for m in self._registry)
            raise ModelNotFound(f"model {request.model!r} does not exist (available: {names})")
        provider = self._providers[model.name]
        observe_route(model=model.name, provider=model.provider, stream=request.stream)
        ticket = await self._admit(caller, model.name, body, len(raw_body))
        upstream_body = {**body, "model": model.upstream_name}
        offered = request.offered_tool_names()
        parser = self._tool_parsers.get(model.name)
        if parser is not None:
            upstream_body = parser.prepare_request(upstream_body, constrain=model.constrain_tool_calls)
        if not offered:
            parser = None
        if request.stream:
            return await self._stream(model, provider, upstream_body, parser, offered, disconnected, ticket)
        try:
            answer = await self._await_upstream(
                observe_completion(provider.complete(upstream_body)), ticket, disconnected
            )
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        await ticket.settle(answer.get("usage"))
        answer["model"] = model.name
        if parser is not None:
            extract_into_completion(answer, parser, offered)
        return Response(orjson.dumps(answer), media_type="application/json", headers=ticket.headers)

    async def _await_upstream[T](
        self, work: Awaitable[T], ticket: Ticket, disconnected: Callable[[], Awaitable[object]]
    ) -> T:
        """The upstream's answer (or first chunk), counted in flight; a failure is observed and gives the ticket's
        tokens back; `ClientGone` if the client left first."""
        self.in_flight += 1
        try:
            return await _unless_disconnected(work, disconnected)
        except ProxyError as exc:
            observe_error(exc)
            await ticket.release()
            raise
        finally:
            self.in_flight -= 1

    async def _admit(self, caller: Caller | None, model: str, body: dict[str, Any], body_chars: int) -> Ticket:
        if self._rate_limiter is None:
            return UNLIMITED
        return await self._rate_limiter.admit(caller or Caller((), "unknown"), model, body, body_chars)

    @staticmethod
    def _validate(raw_body: bytes) -> tuple[dict[str, Any], ChatCompletionRequest]:
        try:
            body = orjson.loads(raw_body)
        except orjson.JSONDecodeError:
            raise InvalidRequest("request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise InvalidRequest("request body must be a JSON object")
        try:
            return body, ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            raise InvalidRequest(describe_validation_errors(exc.errors())) from None

    async def _stream(
        self,
        model: ModelConfig,
        provider: Provider,
        body: dict[str, Any],
        parser: ToolParser | None,
        offered: frozenset[str],
        disconnected: Callable[[], Awaitable[object]],
        ticket: Ticket = UNLIMITED,
    ) -> Response:
        """Wait for the upstream's first chunk before answering, so early failures keep their HTTP status."""
        body, tap = ticket.stream_body(body)
        chunks = observe_upstream(provider.stream(body))
        try:
            first = await self._await_upstream(anext(chunks, None), ticket, disconnected)
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        if first is None:
            await chunks.aclose()
        extractor = StreamingToolCallExtractor(parser, offered) if parser is not None else None
        return StreamingResponse(
            self._relay(model.name, first, chunks, extractor, ticket, tap),
            media_type="text/event-stream",
            headers={**SSE_HEADERS, **ticket.headers},
        )

    async def _relay(
        self,
        name: str,
        first: dict[str, Any] | None,
        chunks: AsyncGenerator[dict[str, Any], None],
        extractor: StreamingToolCallExtractor | None,
        ticket: Ticket = UNLIMITED,
        tap: UsageTap | None = None,
    ) -> AsyncIterator[bytes]:
        tap = tap or UsageTap(strip=False)
        self.in_flight += 1
        template: dict[str, Any] = {}
        try:
            chunk = first
            while chunk is not None:
                if tap.drop(chunk):
                    chunk = await anext(chunks, None)
                    continue
                chunk["model"] = name
                if extractor is None:
                    yield _event(chunk)
                else:
                    template = chunk
                    out = extractor.process(chunk)
                    if out:
                        yield b"".join(_event(c) for c in out)
                chunk = await anext(chunks, None)
            if extractor is not None and template:
                rest = extractor.flush({k: v for k, v in template.items() if k not in ("choices", "usage")})
                if rest:
                    yield b"".join(_event(c) for c in rest)
            yield _DONE
        except ProxyError as exc:
            observe_error(exc)
            yield _event(exc.body())
        finally:
            self.in_flight -= 1
            await chunks.aclose()
            await ticket.settle(tap.usage)


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def _unless_disconnected[T](work: Awaitable[T], disconnected: Callable[[], Awaitable[object]]) -> T:
    """Run `work`, cancelling it (and so its upstream request) if the client disconnects first."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
    if not task.done() or task.cancelled():
        raise ClientGone
    return task.result()
