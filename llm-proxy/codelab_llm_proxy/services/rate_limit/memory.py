"""The in-process counter store: the default, exact for one proxy process.

Expired buckets are swept at most once per window, so one-off callers (a client IP seen once) do not make the
table grow for ever.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from codelab_llm_proxy.services.rate_limit.backend import Admission, BucketState, Charge, Settlement


def _monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class MemoryBackend:
    def __init__(self, clock_ms: Callable[[], int] = _monotonic_ms) -> None:
        self._clock_ms = clock_ms
        self._buckets: dict[str, list[int]] = {}
        """key → [window start ms, used]."""
        self._next_sweep_ms = 0

    def __len__(self) -> int:
        return len(self._buckets)

    async def acquire(self, charges: Sequence[Charge], window_ms: int) -> Admission:
        now = self._clock_ms()
        if now >= self._next_sweep_ms:
            self._sweep(now, window_ms)
        states: list[tuple[Charge, int, int]] = []
        wait = 0
        for charge in charges:
            bucket = self._buckets.get(charge.key)
            start, used = (bucket[0], bucket[1]) if bucket and now - bucket[0] < window_ms else (now, 0)
            if used + charge.amount > charge.limit:
                wait = max(wait, start + window_ms - now)
            states.append((charge, start, used))
        allowed = wait == 0
        buckets = []
        for charge, start, used in states:
            if allowed:
                used += charge.amount
                self._buckets[charge.key] = [start, used]
            buckets.append(BucketState(charge.key, charge.limit, used, start, start + window_ms - now))
        return Admission(allowed, wait, tuple(buckets))

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        for item in settlements:
            bucket = self._buckets.get(item.key)
            if bucket is not None and bucket[0] == item.window_start_ms:
                bucket[1] = max(bucket[1] + item.delta, 0)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._buckets.clear()

    def _sweep(self, now: int, window_ms: int) -> None:
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[0] < window_ms}
        self._next_sweep_ms = now + window_ms
