"""Which upstream failures are worth another try, and how long to wait before it.

Transient: connect errors, 5xx, timeouts and 429 (`UpstreamError` and its timeout, or a passed-on 429). A
deployment that refuses the request itself (`is_request_fault`: any other 4xx but 401/403, or an error naming the
request's fault such as its context length) would refuse it again anywhere, so that error goes straight to the caller,
and it says nothing about the deployment's health. The wait doubles per try with jitter (so many proxies retrying at
once spread out), and an upstream's `Retry-After` is honoured when it is not longer than the policy's cap.
"""

from __future__ import annotations

import email.utils
import random
import time
from datetime import UTC

from codelab_llm_proxy.core.errors import UpstreamError, UpstreamRejected
from codelab_llm_proxy.core.model_registry import RetryPolicy

TOO_MANY_REQUESTS = 429


def is_request_fault(error: UpstreamError) -> bool:
    """Did the upstream refuse the request itself, so that no try anywhere can succeed?"""
    return isinstance(error, UpstreamRejected) and error.status != TOO_MANY_REQUESTS


def is_transient(error: UpstreamError) -> bool:
    """May a later try (here or on another deployment) succeed where this one failed?"""
    return not is_request_fault(error)


def retry_delay(policy: RetryPolicy, attempt: int, retry_after: float | None) -> float | None:
    """Seconds to wait before try number `attempt + 1` (0-based `attempt` just failed), or None when the upstream
    asked for a longer pause than the policy allows (then the router moves on instead of waiting)."""
    if retry_after is not None:
        return retry_after if retry_after <= policy.max_retry_after_s else None
    ceiling = min(policy.max_delay_s, policy.base_delay_s * (2**attempt))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: either delta-seconds (`"3"`, `"1.5"`) or an HTTP date; None if absent
    or unreadable. A date in the past means "now" (0)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - time.time())
    return max(0.0, seconds) if seconds == seconds else None  # NaN is not a delay
