"""Requests-per-minute and tokens-per-minute limits per caller and per model (see `limiter` for the policy).

`rate_limiter(settings, registry)` yields the app's limiter, or None when no limit is configured (then the
serving path does no rate-limit work at all). Counters live in memory, or in Redis with `LLM_PROXY__REDIS_URL`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from codelab_llm_proxy.core.config import Settings
from codelab_llm_proxy.core.model_registry import ModelRegistry
from codelab_llm_proxy.services.rate_limit.backend import RateLimitBackend
from codelab_llm_proxy.services.rate_limit.limiter import (
    UNLIMITED,
    Caller,
    Limits,
    RateLimited,
    RateLimiter,
    Ticket,
    UsageTap,
)
from codelab_llm_proxy.services.rate_limit.memory import MemoryBackend

__all__ = [
    "UNLIMITED",
    "Caller",
    "Limits",
    "RateLimited",
    "RateLimiter",
    "Ticket",
    "UsageTap",
    "build_rate_limiter",
    "rate_limiter",
]


def build_rate_limiter(settings: Settings, registry: ModelRegistry) -> RateLimiter | None:
    caller_limits = Limits(settings.rate_limit_rpm, settings.rate_limit_tpm)
    model_limits = {m.name: Limits(m.rpm, m.tpm) for m in registry if m.rpm is not None or m.tpm is not None}
    if not caller_limits.active and not model_limits:
        return None
    backend: RateLimitBackend
    if settings.redis_url:
        from codelab_llm_proxy.services.rate_limit.redis import RedisBackend

        backend = RedisBackend(settings.redis_url, settings.redis_key_prefix)
    else:
        backend = MemoryBackend()
    return RateLimiter(
        backend,
        caller_limits=caller_limits,
        model_limits=model_limits,
        window_s=settings.rate_limit_window_s,
        default_max_tokens=settings.rate_limit_default_max_tokens,
        caller_keys=tuple(k.get_secret_value() for k in settings.caller_keys),
    )


@asynccontextmanager
async def rate_limiter(settings: Settings, registry: ModelRegistry) -> AsyncIterator[RateLimiter | None]:
    """The limiter for the app's lifetime (its Redis connections are made in, and closed with, the app's loop)."""
    limiter = build_rate_limiter(settings, registry)
    try:
        yield limiter
    finally:
        if limiter is not None:
            await limiter.close()
