"""What the proxy learns about one request while serving it, gathered for one log line and one metrics update.

The observability middleware opens a `RequestObservation` per request and publishes it in a context variable;
the serving code annotates it through the small hooks here (which model/provider/deployment answered, the
upstream's usage, time spent waiting on the upstream). Everything is plain attribute writes: per chunk the only
cost is two `perf_counter()` calls in `observe_upstream`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable
from contextvars import ContextVar
from time import perf_counter
from typing import Any

from codelab_llm_proxy.core.errors import ProxyError

UNKNOWN = "unknown"


class RequestObservation:
    """Timings and outcome of one request. Times are `perf_counter()` seconds."""

    __slots__ = (
        "chunks",
        "deployment",
        "error_code",
        "error_message",
        "error_status",
        "finished",
        "first_byte",
        "model",
        "operation",
        "provider",
        "request_id",
        "started",
        "status",
        "stream",
        "tokens_in",
        "tokens_out",
        "upstream_wait",
    )

    def __init__(self, request_id: str, operation: str) -> None:
        self.request_id = request_id
        self.operation = operation
        self.started = perf_counter()
        self.finished = 0.0
        self.first_byte = 0.0
        """When the first body bytes were handed to the server (the client's time to first token)."""
        self.model = UNKNOWN
        self.provider = UNKNOWN
        self.deployment = UNKNOWN
        self.stream = False
        self.status = 0
        self.error_status = 0
        """Status of the error that ended the request (also one sent in-band in a started stream); 0 when none."""
        self.error_code = ""
        self.error_message = ""
        self.upstream_wait = 0.0
        self.chunks = 0
        self.tokens_in: int | None = None
        self.tokens_out: int | None = None

    @property
    def outcome_status(self) -> int:
        """The HTTP status, or the in-band error's status when a started stream failed."""
        return self.error_status or self.status

    @property
    def duration(self) -> float:
        return (self.finished or perf_counter()) - self.started

    @property
    def ttft(self) -> float | None:
        """Only for a stream that started (an error answered with a status has no first token)."""
        return self.first_byte - self.started if self.stream and self.status == 200 and self.first_byte else None

    @property
    def output_tokens(self) -> int | None:
        """The upstream's reported count, else (streams) the content chunks relayed, one token each."""
        if self.tokens_out is not None:
            return self.tokens_out
        return max(self.chunks - 1, 0) if self.stream and self.chunks else None

    def note_usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(prompt, int):
                self.tokens_in = prompt
            if isinstance(completion, int):
                self.tokens_out = completion


_current: ContextVar[RequestObservation | None] = ContextVar("llm_proxy_observation", default=None)


def current_observation() -> RequestObservation | None:
    return _current.get()


def start_observation(request_id: str, operation: str) -> tuple[RequestObservation, object]:
    """Open an observation for the running request; pass the token to `end_observation`."""
    observation = RequestObservation(request_id, operation)
    return observation, _current.set(observation)


def end_observation(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def observe_route(*, model: str, provider: str, deployment: str | None = None, stream: bool | None = None) -> None:
    """Record which configured model / provider / deployment serves the request (the last call wins, so a
    failover simply calls it again for the deployment that took over)."""
    observation = _current.get()
    if observation is not None:
        observation.model = model
        observation.provider = provider
        observation.deployment = deployment or model
        if stream is not None:
            observation.stream = stream


def observe_deployment(deployment: str, provider: str) -> None:
    """Record the deployment (and its provider) that took the request, once routing has picked it."""
    observation = _current.get()
    if observation is not None:
        observation.deployment = deployment
        observation.provider = provider


def observe_error(exc: ProxyError) -> None:
    """Record why the request failed (before the answer started, or in-band after it had)."""
    observation = _current.get()
    if observation is not None:
        observation.error_status = exc.status
        observation.error_code = exc.code
        observation.error_message = exc.message


async def observe_upstream(chunks: AsyncGenerator[dict[str, Any], None]) -> AsyncGenerator[dict[str, Any], None]:
    """Pass a provider's chunks through, timing the waits on the upstream and picking up its usage."""
    observation = _current.get()
    if observation is None:
        async for chunk in chunks:
            yield chunk
        return
    try:
        while True:
            began = perf_counter()
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            finally:
                observation.upstream_wait += perf_counter() - began
            observation.chunks += 1
            usage = chunk.get("usage")
            if usage:
                observation.note_usage(usage)
            yield chunk
    finally:
        await chunks.aclose()


async def observe_completion[T: dict[str, Any]](work: Awaitable[T]) -> T:
    """Await a non-streamed completion, timing it as upstream wait and picking up its usage."""
    observation = _current.get()
    began = perf_counter()
    try:
        answer = await work
    finally:
        if observation is not None:
            observation.upstream_wait += perf_counter() - began
    if observation is not None:
        observation.note_usage(answer.get("usage"))
    return answer
