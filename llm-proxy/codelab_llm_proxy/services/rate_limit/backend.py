"""The interface every rate-limit counter store implements, and the values it trades in.

A *bucket* is one counter (requests or tokens of one caller, or of one model) living in a fixed window that
starts with the bucket's first charge after the previous window ended and lasts `window_s`. A charge is
admitted only when every bucket it touches stays within its limit; then all of them are charged together,
atomically, so a rejected request consumes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Charge:
    """Add `amount` to bucket `key`, unless that takes it over `limit`."""

    key: str
    limit: int
    amount: int


@dataclass(frozen=True, slots=True)
class BucketState:
    """One bucket after an admission attempt: `used` includes this charge when it was admitted."""

    key: str
    limit: int
    used: int
    window_start_ms: int
    """Identifies the window the charge went into, so a later settlement never touches a newer window."""
    resets_in_ms: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)


@dataclass(frozen=True, slots=True)
class Admission:
    allowed: bool
    retry_after_ms: int
    """How long until every bucket that refused has a fresh window (0 when admitted)."""
    buckets: tuple[BucketState, ...]


@dataclass(frozen=True, slots=True)
class Settlement:
    """Correct a token bucket by `delta` (real usage minus reservation) if its window is still `window_start_ms`."""

    key: str
    window_start_ms: int
    delta: int


class RateLimitBackend(Protocol):
    async def acquire(self, charges: Sequence[Charge], window_ms: int) -> Admission:
        """Admit all charges or none, in one atomic step."""
        ...

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        """Apply corrections; a bucket never drops below zero."""
        ...

    async def ping(self) -> None:
        """Raise when the store of the counters does not answer."""
        ...

    async def close(self) -> None: ...
