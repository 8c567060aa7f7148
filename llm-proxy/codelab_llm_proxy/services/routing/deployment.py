"""One deployment: an upstream with its provider, breaker and tool handling, and what it does to a request.

A request is prepared for the deployment that takes it, not for the public model it named: the deployment's
`upstream_model`, its default `max_tokens`, and — when its `tool_parser` is set — tools presented the way that
parser's models read them (with a llama.cpp grammar if `constrain_tool_calls`). Its answer is then parsed with the
same parser, so a fallback with native tool calling gets the client's `tools` untouched and its `tool_calls` come
back as they are. A deployment without a parser costs one dict copy per request and nothing per chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from codelab_llm_proxy.core.model_registry import ModelConfig
from codelab_llm_proxy.services.providers import ChatBody, Provider
from codelab_llm_proxy.services.routing.circuit_breaker import BreakerState, CircuitBreaker
from codelab_llm_proxy.services.tool_parsers import (
    OfferedTools,
    StreamingToolCallExtractor,
    ToolParser,
    extract_into_completion,
    get_tool_parser,
)

STATE_CODES = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
"""Breaker state as a number (for a metrics gauge): 0 closed, 1 half-open, 2 open."""

CHARS_PER_TOKEN = 4
"""Prompt size estimate for the default `max_tokens` (the rate limiter estimates the same way)."""
MIN_DEFAULT_MAX_TOKENS = 256
"""The default `max_tokens` is lowered to what the context leaves after the prompt, but not below this."""


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """A validated chat-completions request as the router takes it."""

    model: str
    """The public model name; its deployment chain is tried."""
    body: ChatBody
    """The client's OpenAI-shaped body (never modified; each deployment gets its own copy)."""
    offered: OfferedTools
    """The tools the model may call (empty: answers are never parsed for calls)."""
    body_chars: int
    """Size of the client's body, for the prompt-size estimate."""


@dataclass(frozen=True)
class DeploymentHealth:
    """One deployment's breaker as seen now (the admin endpoint's rows and the metrics' source)."""

    deployment: str
    model: str
    provider: str
    upstream_model: str
    base_url: str
    state: str
    state_code: int
    calls: int
    """Requests that ended in the breaker's window."""
    failures: int
    error_ratio: float
    retry_in_s: float
    """Seconds until an open breaker lets a probe through (0 otherwise)."""


class Deployment:
    """Built at startup from a resolved `ModelConfig` (an unknown `tool_parser` fails there); `provider` is set
    once the app's HTTP session exists."""

    __slots__ = ("breaker", "config", "parser", "provider")

    def __init__(self, config: ModelConfig, breaker: CircuitBreaker) -> None:
        self.config = config
        self.breaker = breaker
        self.parser: ToolParser | None = get_tool_parser(config.tool_parser) if config.tool_parser else None
        self.provider: Provider | None = None

    def prepare(self, request: CompletionRequest) -> ChatBody:
        """The body this deployment's upstream gets."""
        config = self.config
        body = {**request.body, "model": config.upstream_name}
        if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
            room = config.context_window - request.body_chars // CHARS_PER_TOKEN
            body["max_tokens"] = min(config.max_output_tokens, max(room, MIN_DEFAULT_MAX_TOKENS))
        if self.parser is not None:
            body = self.parser.prepare_request(body, constrain=config.constrain_tool_calls)
        return body

    def parse(self, answer: dict[str, Any], request: CompletionRequest) -> dict[str, Any]:
        """A whole answer with the calls this deployment's model wrote as text turned into `tool_calls`."""
        if self.parser is not None and request.offered:
            extract_into_completion(answer, self.parser, request.offered)
        return answer

    def extractor(self, request: CompletionRequest) -> StreamingToolCallExtractor | None:
        """The filter a stream from this deployment goes through, or None when nothing needs parsing."""
        if self.parser is None or not request.offered:
            return None
        return StreamingToolCallExtractor(self.parser, request.offered)

    def unusable(self) -> str | None:
        """Why a request cannot go to this deployment now, or None."""
        if self.breaker.state is BreakerState.OPEN:
            return f"{self.config.deployment_id}: circuit open for {self.breaker.retry_in():.0f} s"
        if self.config.api_key_env and not self.config.api_key():
            return f"{self.config.deployment_id}: {self.config.api_key_env} is not set"
        return None

    def health(self) -> DeploymentHealth:
        calls, failures = self.breaker.window()
        state = self.breaker.state
        return DeploymentHealth(
            deployment=self.config.deployment_id,
            model=self.config.name,
            provider=self.config.provider,
            upstream_model=self.config.upstream_name,
            base_url=self.config.base_url,
            state=state.value,
            state_code=STATE_CODES[state],
            calls=calls,
            failures=failures,
            error_ratio=round(failures / calls, 4) if calls else 0.0,
            retry_in_s=round(self.breaker.retry_in(), 3),
        )
