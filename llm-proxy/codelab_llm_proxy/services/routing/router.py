"""The routing layer between the chat endpoint and the providers: preparation per deployment, retries, failover,
timeouts, circuit breakers, and tool-call parsing of the answer.

A public model maps to an ordered chain of deployments (its own, then its fallback models'). Each try sends the
body prepared for that deployment (`Deployment.prepare`), and the answer of the deployment that answered is parsed
with that deployment's tool parser, so the serving layer only renders what comes back. Before the answer's first
byte reaches the client, a transient failure is retried on the same deployment (backoff with jitter, the
upstream's `Retry-After` honoured) and then the next deployment is tried; deployments whose breaker is open are
skipped, and when every one is, the request fails with 503. Once the first chunk has been handed to the client,
nothing is retried: a failure propagates and the serving layer ends the stream with an in-band error.

Circuit breakers count requests, not tries: a request holds one permit per deployment it tries, for all of that
deployment's retries, and ends it with one outcome: a success, one failure (its last try failed: 5xx, connect
error, timeout, 429, rejected credentials), or nothing at all when the upstream refused the request itself
(`is_request_fault`: context too long, content filtered, any 4xx but 401/403/429), which is the client's problem
and must not take the deployment from every other client.

Every upstream error leaves through `_summarize`: the proxy's own sentence, with the upstream's error type and
message cleaned of secrets and internal addresses and bounded (`core.redaction`).

Timeouts: connect and idle (silence between chunks, `read_timeout_s`) live in the provider's HTTP client; the
time to the first chunk (`first_token_timeout_s`) and the whole request (`total_timeout_s`) are enforced here.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from codelab_common.health import tcp_reachable
from codelab_llm_proxy.core.errors import NoDeploymentAvailable, UpstreamError, UpstreamTimeout
from codelab_llm_proxy.core.model_registry import ModelConfig, ModelRegistry
from codelab_llm_proxy.core.redaction import Redactor
from codelab_llm_proxy.services.observability.observation import observe_deployment
from codelab_llm_proxy.services.providers import ChatBody, Provider, create_provider, provider_names
from codelab_llm_proxy.services.routing.circuit_breaker import CircuitBreaker
from codelab_llm_proxy.services.routing.deployment import CompletionRequest, Deployment, DeploymentHealth
from codelab_llm_proxy.services.routing.retry import TOO_MANY_REQUESTS, is_request_fault, is_transient, retry_delay
from codelab_llm_proxy.services.translation.openai_chunks import CompletionBuilder

Chunk = dict[str, Any]
_ENVELOPE_ONLY = ("choices", "usage")


class Router:
    """Built from the registry at startup (unknown providers fail there); `connect` creates the providers."""

    def __init__(self, registry: ModelRegistry, secrets: Iterable[str] = ()) -> None:
        """`secrets`: the proxy's own keys, kept out of error messages like every deployment's upstream key."""
        known = set(provider_names())
        self._deployments: dict[str, Deployment] = {}
        for model in registry:
            for config in model.resolved_deployments():
                if config.provider not in known:
                    raise ValueError(
                        f"model {model.name!r}: unknown provider {config.provider!r} (known: {sorted(known)})"
                    )
                self._deployments[config.deployment_id] = Deployment(config, CircuitBreaker(model.circuit_breaker))
        self._chains = {
            model.name: [self._deployments[d.deployment_id] for d in registry.route(model.name)] for model in registry
        }
        own = tuple(secrets)
        deployments = tuple(self._deployments.values())
        self._redactor = Redactor(
            lambda: (*own, *(d.config.api_key() for d in deployments)),
            hosts=(urlsplit(d.config.base_url).hostname or "" for d in deployments),
        )

    def connect(self, session: aiohttp.ClientSession) -> None:
        for deployment in self._deployments.values():
            deployment.provider = create_provider(deployment.config, session)

    def health(self) -> list[DeploymentHealth]:
        """Every deployment's circuit-breaker state, in configuration order."""
        return [deployment.health() for deployment in self._deployments.values()]

    def chain(self, model: str) -> list[Deployment]:
        """The model's deployments in the order they are tried (empty for an unknown model)."""
        return list(self._chains.get(model, ()))

    def available(self, model: str) -> bool:
        """Whether some deployment of the model's chain could take a request now (breaker, key)."""
        return any(deployment.unusable() is None for deployment in self._chains.get(model, ()))

    async def readiness(self) -> str | None:
        """None when at least one deployment is usable and its server accepts a connection; otherwise why not (by
        deployment: the connection error would name the server's address, and `/ready` needs no key)."""
        reasons = []
        for deployment in self._deployments.values():
            reason = deployment.unusable()
            if reason is None and await tcp_reachable(deployment.config.base_url) is not None:
                reason = f"{deployment.config.deployment_id}: model server unreachable"
            if reason is None:
                return None
            reasons.append(reason)
        return "; ".join(reasons) or "no model deployment is configured"

    async def complete(self, request: CompletionRequest) -> dict[str, Any]:
        """The answer of the first deployment that gives one, parsed with that deployment's tool parser."""
        deployment, answer = await self._attempt(request.model, lambda d: _complete(d, d.prepare(request)))
        observe_deployment(deployment.config.deployment_id, deployment.config.provider)
        deployment.breaker.record_success()
        return deployment.parse(answer, request)

    async def stream(self, request: CompletionRequest) -> AsyncGenerator[Chunk, None]:
        """Chunks of the first deployment that starts answering, through that deployment's tool-call extractor (which
        may hold text back, and may turn one upstream chunk into several); after the first chunk a failure
        propagates."""
        deployment, (chunks, first, started) = await self._attempt(
            request.model, lambda d: _open_stream(d, d.prepare(request))
        )
        observe_deployment(deployment.config.deployment_id, deployment.config.provider)
        extractor = deployment.extractor(request)
        upstream = _rest(deployment.config, first, chunks, started)
        settled = False
        try:
            if extractor is None:
                async for chunk in upstream:
                    yield chunk
            else:
                last: Chunk | None = None
                async for chunk in upstream:
                    last = chunk
                    for out in extractor.process(chunk):
                        yield out
                if last is not None:
                    for out in extractor.flush({k: v for k, v in last.items() if k not in _ENVELOPE_ONLY}):
                        yield out
            deployment.breaker.record_success()
            settled = True
        except UpstreamError as exc:
            _settle(deployment, exc)
            settled = True
            self._summarize(exc)
            raise
        finally:
            if not settled:
                deployment.breaker.release()
            await upstream.aclose()
            await chunks.aclose()

    async def _attempt[T](self, model: str, call: Callable[[Deployment], Awaitable[T]]) -> tuple[Deployment, T]:
        """Run `call` on the chain's deployments with retries; the winner's breaker permit is still held."""
        chain = self._chains[model]
        last: UpstreamError | None = None
        for deployment in chain:
            if not deployment.breaker.try_acquire():
                continue
            try:
                return deployment, await _tries(deployment, call)
            except UpstreamError as exc:
                _settle(deployment, exc)
                if is_request_fault(exc):
                    self._summarize(exc)
                    raise
                last = exc
            except BaseException:
                deployment.breaker.release()
                raise
        if last is None:
            wait = max(1.0, min(d.breaker.retry_in() for d in chain))
            error = NoDeploymentAvailable(
                f"every deployment of model {model!r} is out of rotation after repeated failures; "
                f"try again in {math.ceil(wait)} s"
            )
            error.retry_after = wait
            raise error
        if last.status == TOO_MANY_REQUESTS and last.retry_after is None:
            last.retry_after = 1.0
        raise self._summarize(last)

    def _summarize(self, error: UpstreamError) -> UpstreamError:
        return error.summarize(self._redactor)


async def _tries[T](deployment: Deployment, call: Callable[[Deployment], Awaitable[T]]) -> T:
    """`call` on one deployment until it succeeds, the upstream refuses the request itself, the retry policy gives
    up, or the upstream asks for a longer pause than it allows; the last failure is raised."""
    policy = deployment.config.retry
    tries = 0
    while True:
        observe_deployment(deployment.config.deployment_id, deployment.config.provider)
        try:
            return await call(deployment)
        except UpstreamError as exc:
            delay = retry_delay(policy, tries, exc.retry_after) if exc.retryable and is_transient(exc) else None
            tries += 1
            if delay is None or tries == policy.max_attempts:
                raise
            await asyncio.sleep(delay)


def _settle(deployment: Deployment, error: UpstreamError) -> None:
    """One request's outcome on the deployment's breaker: a failure, or nothing when the request itself was at fault."""
    if is_request_fault(error):
        deployment.breaker.release()
    else:
        deployment.breaker.record_failure()


def _provider(deployment: Deployment) -> Provider:
    if deployment.provider is None:
        raise RuntimeError("Router.connect() was not called")
    return deployment.provider


async def _complete(deployment: Deployment, body: ChatBody) -> dict[str, Any]:
    config = deployment.config
    request = _assembled(deployment, body) if config.stream_upstream else _provider(deployment).complete(body)
    if config.total_timeout_s is None:
        return await request
    try:
        async with asyncio.timeout(config.total_timeout_s):
            return await request
    except TimeoutError:
        raise _timeout(config, "did not answer", config.total_timeout_s) from None


async def _assembled(deployment: Deployment, body: ChatBody) -> dict[str, Any]:
    """A whole answer read as a stream (`stream_upstream`): cancelling this closes the upstream's stream."""
    options = {**(body.get("stream_options") or {}), "include_usage": True}
    chunks = _provider(deployment).stream({**body, "stream": True, "stream_options": options})
    builder = CompletionBuilder()
    try:
        async for chunk in chunks:
            builder.add(chunk)
    finally:
        await chunks.aclose()
    if builder.empty:
        raise UpstreamError(f"model server for {deployment.config.name!r} ended its stream without a chunk")
    return builder.result()


async def _open_stream(
    deployment: Deployment, body: ChatBody
) -> tuple[AsyncGenerator[Chunk, None], Chunk | None, float]:
    """Start the upstream stream and wait for its first chunk (within the first-token and total limits)."""
    config = deployment.config
    started = asyncio.get_running_loop().time()
    chunks = _provider(deployment).stream(body)
    limit = _min(config.first_token_timeout_s, config.total_timeout_s)
    try:
        if limit is None:
            first = await anext(chunks, None)
        else:
            async with asyncio.timeout(limit):
                first = await anext(chunks, None)
    except TimeoutError:
        await chunks.aclose()
        raise _timeout(config, "sent no first token", limit or 0) from None
    except BaseException:
        await chunks.aclose()
        raise
    return chunks, first, started


async def _rest(
    config: ModelConfig, first: Chunk | None, chunks: AsyncGenerator[Chunk, None], started: float
) -> AsyncGenerator[Chunk, None]:
    """`first`, then the stream's other chunks within the first-token/total limits when either is set."""
    if first is None:
        return
    yield first
    if config.first_token_timeout_s is None and config.total_timeout_s is None:
        async for chunk in chunks:
            yield chunk
        return
    end = started + config.total_timeout_s if config.total_timeout_s is not None else math.inf
    while (timed := await _next_within(config, chunks, end)) is not None:
        yield timed


async def _next_within(config: ModelConfig, chunks: AsyncGenerator[Chunk, None], end: float) -> Chunk | None:
    """The next chunk (None at the end) within the idle limit and the request's total deadline `end`.

    Only used when the first-token limit widened the provider's socket timeout or a total limit applies;
    otherwise the provider's socket timeout alone bounds the silence between chunks."""
    idle_deadline = asyncio.get_running_loop().time() + config.read_timeout_s
    deadline = min(idle_deadline, end)
    try:
        async with asyncio.timeout_at(deadline):
            return await anext(chunks)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        if deadline == end:
            raise _timeout(config, "did not finish its answer", config.total_timeout_s or 0) from None
        raise _timeout(config, "went silent for more than", config.read_timeout_s) from None


def _timeout(config: ModelConfig, what: str, seconds: float) -> UpstreamTimeout:
    within = "" if what.endswith("than") else " within"
    return UpstreamTimeout(f"model server for {config.name!r} ({config.deployment_id}) {what}{within} {seconds:g} s")


def _min(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None
