"""Behaviour of `POST /v1/chat/completions`: validate, hand the request to the router, render its answer.

The router prepares the request for the deployment that takes it and parses that deployment's answer (tool calls
written as text); this layer admits the request (rate limits), renders JSON or SSE, and watches the client.

Errors before the first byte of an answer are HTTP errors in OpenAI's envelope (400 bad body, 404 unknown model,
4xx passed on from the upstream, 502 upstream failure, 504 upstream timeout). A stream waits for its first chunk
before answering, so such failures keep their status, but only for `keep_alive_s`: a first chunk that takes longer
(a long prompt still being read) starts the stream with a `: keep-alive` comment, and comments follow while it
stays silent; a failure after that is in-band like any later one. Once a stream has started, a failure becomes one
event `data: {"error": {...}}` and the stream ends without `[DONE]`. A client that disconnects cancels the work,
which closes the upstream request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import structlog
from fastapi.responses import Response
from pydantic import ValidationError

from codelab_common.http_errors import describe_validation_errors
from codelab_common.sse import DEFAULT_KEEP_ALIVE_S, KEEP_ALIVE, EventStreamResponse
from codelab_llm_proxy.api.chat_completions.protocol import ChatCompletionRequest
from codelab_llm_proxy.core.errors import InvalidRequest, ModelNotFound, ProxyError
from codelab_llm_proxy.core.json_body import parse_json_object
from codelab_llm_proxy.core.model_registry import ModelRegistry
from codelab_llm_proxy.services.observability import observe_completion, observe_error, observe_route, observe_upstream
from codelab_llm_proxy.services.rate_limit import UNLIMITED, Caller, RateLimiter, Ticket, UsageTap
from codelab_llm_proxy.services.routing.deployment import CompletionRequest
from codelab_llm_proxy.services.routing.router import Router

log = structlog.get_logger(__name__)

_DONE = b"data: [DONE]\n\n"
CLIENT_CLOSED_REQUEST = 499

Chunk = dict[str, Any]


def _event(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class ChatCompletionService:
    def __init__(
        self,
        registry: ModelRegistry,
        router: Router,
        rate_limiter: RateLimiter | None = None,
        keep_alive_s: float | None = DEFAULT_KEEP_ALIVE_S,
    ) -> None:
        self._registry = registry
        self._router = router
        self._rate_limiter = rate_limiter
        self.keep_alive_s = keep_alive_s
        """Longest silence of a started stream, and longest wait for a first chunk before a stream starts anyway."""
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
        observe_route(model=model.name, provider=model.provider, stream=request.stream)
        ticket = await self._admit(caller, model.name, body, len(raw_body))
        offered = request.offered_tool_names()
        if request.stream:
            body, tap = ticket.stream_body(body)
            completion = CompletionRequest(model.name, body, offered, len(raw_body))
            return await self._stream(completion, disconnected, ticket, tap)
        completion = CompletionRequest(model.name, body, offered, len(raw_body))
        work = asyncio.ensure_future(observe_completion(self._router.complete(completion)))
        try:
            await self._await_upstream(work, ticket, disconnected)
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        answer = work.result()
        await ticket.settle(answer.get("usage"))
        answer["model"] = model.name
        return Response(orjson.dumps(answer), media_type="application/json", headers=ticket.headers)

    async def _await_upstream(
        self,
        work: asyncio.Future[Any],
        ticket: Ticket,
        disconnected: Callable[[], Awaitable[object]],
        within: float | None = None,
    ) -> bool:
        """Wait for the upstream's answer (or first chunk), counted in flight: True once `work` is done, False if it
        is still running after `within` seconds. A failure is observed, gives the ticket's tokens back and is
        raised; `ClientGone` (and `work` cancelled) if the client left first."""
        self.in_flight += 1
        try:
            if not await _unless_disconnected(work, disconnected, within):
                return False
            work.result()
            return True
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
        body = parse_json_object(raw_body)
        try:
            return body, ChatCompletionRequest.model_validate(body)
        except ValidationError as exc:
            raise InvalidRequest(describe_validation_errors(exc.errors())) from None

    async def _stream(
        self,
        request: CompletionRequest,
        disconnected: Callable[[], Awaitable[object]],
        ticket: Ticket,
        tap: UsageTap,
    ) -> Response:
        """Wait for the first chunk (up to `keep_alive_s`) before answering, so early failures keep their status."""
        chunks = observe_upstream(self._router.stream(request))
        first = asyncio.ensure_future(anext(chunks, None))
        try:
            arrived = await self._await_upstream(first, ticket, disconnected, within=self.keep_alive_s)
        except ClientGone:
            return Response(status_code=CLIENT_CLOSED_REQUEST)
        except ProxyError:
            await chunks.aclose()
            raise
        return EventStreamResponse(
            self._relay(request.model, first, arrived, chunks, ticket, tap),
            keep_alive_s=self.keep_alive_s,
            headers=ticket.headers,
        )

    async def _relay(
        self,
        name: str,
        first: asyncio.Future[Chunk | None],
        arrived: bool,
        chunks: AsyncGenerator[Chunk, None],
        ticket: Ticket,
        tap: UsageTap,
    ) -> AsyncIterator[bytes]:
        """The stream's SSE bytes; when the first chunk has not `arrived` yet, a comment opens the stream."""
        self.in_flight += 1
        relayed = False
        try:
            if not arrived:
                yield KEEP_ALIVE
            chunk = await first
            while chunk is not None:
                if not tap.drop(chunk):
                    chunk["model"] = name
                    relayed = True
                    yield _event(chunk)
                chunk = await anext(chunks, None)
            yield _DONE
        except ProxyError as exc:
            observe_error(exc)
            yield _event(exc.body())
        finally:
            self.in_flight -= 1
            if first.done():
                await chunks.aclose()
            else:  # the client left while the first chunk was awaited: cancelling closes the upstream request
                first.cancel()
            if relayed or tap.usage is not None:
                await ticket.settle(tap.usage)
            else:
                await ticket.release()


class ClientGone(Exception):
    """The client disconnected before its answer was ready."""


async def _unless_disconnected(
    work: asyncio.Future[Any], disconnected: Callable[[], Awaitable[object]], within: float | None = None
) -> bool:
    """Wait for `work` (True once it is done), for at most `within` seconds (False, `work` still running);
    cancel it and raise `ClientGone` if the client disconnects first."""
    watcher = asyncio.ensure_future(disconnected())
    try:
        done, _ = await asyncio.wait((work, watcher), timeout=within, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        work.cancel()
        raise
    finally:
        watcher.cancel()
    if work.done() and not work.cancelled():
        return True
    if watcher in done or work.done():
        work.cancel()
        raise ClientGone
    return False
