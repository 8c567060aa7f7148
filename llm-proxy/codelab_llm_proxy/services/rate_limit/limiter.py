"""The rate-limit policy: who is limited, by how much, and what a caller sees.

Limits are requests per window (RPM) and tokens per window (TPM, prompt + completion), with separate counters
and windows for the two, for two kinds of bucket:

- the caller: a dedicated caller key (`LLM_PROXY__CALLER_KEYS`, sent as `X-Internal-Auth` or
  `Authorization: Bearer`) is its own identity, named by a hash of the key (the key itself never reaches a
  counter name or a log line); a request carrying only the proxy's shared internal key has no caller key of its
  own and is limited per client IP;
- the model: `rpm` / `tpm` of a model in the models file cap that model across all callers.

Windows are fixed, `window_s` long (60 by default), and start at a bucket's first request after the previous
window ended: a limit of N admits exactly N in a window and never trips early (a burst of up to 2N can
straddle two adjacent windows). Tokens are reserved at admission (prompt estimate + max tokens) and settled
with the real usage afterwards, so a request that used less frees the difference for others.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from codelab_llm_proxy.core.errors import ProxyError
from codelab_llm_proxy.services.rate_limit.backend import Admission, BucketState, Charge, RateLimitBackend, Settlement

log = structlog.get_logger(__name__)

CHARS_PER_TOKEN = 4
"""Prompt tokens are estimated as body characters / 4: cheap, and settlement corrects it afterwards."""


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None

    @property
    def active(self) -> bool:
        return self.rpm is not None or self.tpm is not None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request: SHA-256 digests of the keys it presented (any auth header) and the client's IP."""

    key_digests: tuple[str, ...]
    ip: str

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], client_ip: str | None) -> Caller:
        keys = [headers.get("x-internal-auth"), headers.get("x-api-key")]
        authorization = headers.get("authorization", "")
        if authorization[:7].lower() == "bearer ":
            keys.append(authorization[7:].strip())
        return cls(tuple(key_digest(k) for k in keys if k), client_ip or "unknown")


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class RateLimited(ProxyError):
    """Over a limit: 429 in OpenAI's shape (`type` is "requests" or "tokens", as OpenAI spells it)."""

    status, type, code = 429, "requests", "rate_limit_exceeded"

    def __init__(self, message: str, *, type: str, headers: dict[str, str]) -> None:
        super().__init__(message, type=type)
        self._headers = headers

    def headers(self) -> dict[str, str]:
        """`Retry-After` and the `x-ratelimit-*` headers, sent with the 429."""
        return self._headers


class Ticket:
    """One admitted request: its `headers` for the answer, and the token reservation to settle once."""

    __slots__ = ("_backend", "_reserved", "_token_buckets", "headers")

    def __init__(
        self,
        backend: RateLimitBackend | None,
        token_buckets: tuple[BucketState, ...],
        reserved: int,
        headers: dict[str, str],
    ) -> None:
        self._backend = backend
        self._token_buckets = token_buckets
        self._reserved = reserved
        self.headers = headers

    @property
    def counts_tokens(self) -> bool:
        """True when real usage matters (a token limit applies), so the upstream should report it."""
        return bool(self._token_buckets)

    def stream_body(self, body: dict[str, Any]) -> tuple[dict[str, Any], UsageTap]:
        """The upstream body for a stream, asking for the usage chunk when the client did not (the tap drops it)."""
        options = body.get("stream_options")
        asked = isinstance(options, dict) and options.get("include_usage") is True
        if asked or not self.counts_tokens:
            return body, UsageTap(strip=False)
        return {**body, "stream_options": {**(options or {}), "include_usage": True}}, UsageTap(strip=True)

    async def settle(self, usage: Any) -> None:
        """Replace the reservation by the real total; without a usable `usage` the estimate stands. Once only."""
        total = _total_tokens(usage)
        await self._correct(0 if total is None else total - self._reserved)

    async def release(self) -> None:
        """The upstream produced nothing (it failed before answering): give the reserved tokens back."""
        await self._correct(-self._reserved)

    async def _correct(self, delta: int) -> None:
        buckets, self._token_buckets = self._token_buckets, ()
        if not buckets or not delta or self._backend is None:
            return
        try:
            await self._backend.settle([Settlement(b.key, b.window_start_ms, delta) for b in buckets])
        except Exception as exc:  # a broken counter store must never fail an answer already given
            log.warning("rate_limit_settle_failed", error=f"{type(exc).__name__}: {exc}")


def _total_tokens(usage: Any) -> int | None:
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return prompt + completion
    return None


UNLIMITED = Ticket(None, (), 0, {})
"""The ticket of a request no limit applies to."""


class UsageTap:
    """Reads `usage` off streamed chunks; with `strip`, hides what the proxy asked for on the client's behalf."""

    __slots__ = ("strip", "usage")

    def __init__(self, strip: bool) -> None:
        self.strip = strip
        self.usage: Any = None

    def drop(self, chunk: dict[str, Any]) -> bool:
        """Record the chunk's usage; True when the chunk existed only to carry usage the client did not ask for."""
        if self.strip:
            usage = chunk.pop("usage", None)
            if usage:
                self.usage = usage
                return not chunk.get("choices")
            return False
        usage = chunk.get("usage")
        if usage:
            self.usage = usage
        return False


class RateLimiter:
    def __init__(
        self,
        backend: RateLimitBackend,
        *,
        caller_limits: Limits,
        model_limits: Mapping[str, Limits],
        window_s: float,
        default_max_tokens: int,
        caller_keys: tuple[str, ...] = (),
    ) -> None:
        self._backend = backend
        self._caller = caller_limits
        self._models = dict(model_limits)
        self._window_ms = max(int(window_s * 1000), 1)
        self._default_max_tokens = default_max_tokens
        self._caller_digests = frozenset(key_digest(k) for k in caller_keys)

    def identity(self, caller: Caller) -> str:
        """`key:<hash prefix>` for a dedicated caller key, else `ip:<address>`."""
        for digest in caller.key_digests:
            if digest in self._caller_digests:
                return f"key:{digest[:32]}"
        return f"ip:{caller.ip}"

    def estimate_tokens(self, body: Mapping[str, Any], body_chars: int) -> int:
        """Prompt estimate (body characters / 4) plus the most the answer may use, for every choice asked."""
        completion = body.get("max_completion_tokens") or body.get("max_tokens")
        if not isinstance(completion, int) or completion < 1:
            completion = self._default_max_tokens
        n = body.get("n")
        choices = n if isinstance(n, int) and n > 1 else 1
        return math.ceil(body_chars / CHARS_PER_TOKEN) + completion * choices

    async def admit(self, caller: Caller, model: str, body: Mapping[str, Any], body_chars: int) -> Ticket:
        """Charge one request to its caller's and its model's buckets, or raise `RateLimited` (nothing charged)."""
        identity = self.identity(caller)
        tokens = self.estimate_tokens(body, body_chars)
        charges: list[Charge] = []
        for scope, limits in ((identity, self._caller), (f"model:{model}", self._models.get(model, Limits()))):
            if limits.rpm is not None:
                charges.append(Charge(f"rpm:{scope}", limits.rpm, 1))
            if limits.tpm is not None:
                if tokens > limits.tpm:
                    raise RateLimited(
                        f"request too large: it may use {tokens} tokens (prompt estimate + max tokens), more than "
                        f"the limit of {limits.tpm} tokens per {self._window_ms / 1000:g} s; lower max_tokens",
                        type="tokens",
                        headers={"x-ratelimit-limit-tokens": str(limits.tpm)},
                    )
                charges.append(Charge(f"tpm:{scope}", limits.tpm, tokens))
        if not charges:
            return UNLIMITED
        try:
            admission = await self._backend.acquire(charges, self._window_ms)
        except Exception as exc:  # fail open: an unreachable counter store must not take the proxy down
            log.warning("rate_limit_backend_failed", error=f"{type(exc).__name__}: {exc}")
            return UNLIMITED
        headers = _headers(admission)
        if not admission.allowed:
            refused = next(b for c, b in zip(charges, admission.buckets, strict=True) if b.used + c.amount > b.limit)
            kind = "requests" if refused.key.startswith("rpm:") else "tokens"
            whose = refused.key.split(":", 1)[1]
            retry_after = max(math.ceil(admission.retry_after_ms / 1000), 1)
            headers["retry-after"] = str(retry_after)
            log.info("rate_limited", identity=identity, model=model, bucket=refused.key, retry_after_s=retry_after)
            raise RateLimited(
                f"rate limit reached for {kind} ({whose}): limit {refused.limit} per {self._window_ms / 1000:g} s, "
                f"used {refused.used}; try again in {retry_after} s",
                type=kind,
                headers=headers,
            )
        token_buckets = tuple(b for b in admission.buckets if b.key.startswith("tpm:"))
        return Ticket(self._backend, token_buckets, tokens, headers)

    async def ping(self) -> None:
        await self._backend.ping()

    async def close(self) -> None:
        await self._backend.close()


def _headers(admission: Admission) -> dict[str, str]:
    """OpenAI's `x-ratelimit-*` headers for the tightest bucket of each kind (requests, tokens)."""
    headers: dict[str, str] = {}
    for prefix, kind in (("rpm:", "requests"), ("tpm:", "tokens")):
        buckets = [b for b in admission.buckets if b.key.startswith(prefix)]
        if not buckets:
            continue
        tightest = min(buckets, key=lambda b: b.remaining)
        headers[f"x-ratelimit-limit-{kind}"] = str(tightest.limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(tightest.remaining)
        headers[f"x-ratelimit-reset-{kind}"] = f"{max(math.ceil(tightest.resets_in_ms / 1000), 0)}s"
    return headers
