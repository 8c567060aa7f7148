"""A circuit breaker per deployment: takes a failing upstream out of rotation and probes it back.

Closed: every request may use the deployment; outcomes are kept for `window_s`. When at least `min_calls` ended in
that window and `error_ratio` of them failed, the breaker opens: requests skip the deployment. After `cooldown_s`
it is half-open: exactly one request (the probe) may try; its success closes the breaker (with a fresh window),
its failure opens it for another cool-down.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

from codelab_llm_proxy.core.model_registry import CircuitBreakerPolicy


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, policy: CircuitBreakerPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self._policy = policy
        self._clock = clock
        self._outcomes: deque[tuple[float, bool]] = deque()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at < self._policy.cooldown_s:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def try_acquire(self) -> bool:
        """May a request use the deployment now? In half-open state this hands out the single probe; whoever gets
        True must end with `record_success`, `record_failure` or `release`."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def release(self) -> None:
        """The request ended without telling anything about the deployment (the client went away)."""
        self._probing = False

    def record_success(self) -> None:
        if self._opened_at is not None:
            if self._probing:
                self._close()
            return
        self._record(ok=True)
        self._trip_if_failing()

    def record_failure(self) -> None:
        if self._opened_at is not None:
            if self._probing:
                self._probing = False
                self._opened_at = self._clock()
            return
        self._record(ok=False)
        self._trip_if_failing()

    def retry_in(self) -> float:
        """Seconds until the deployment may be probed again (0 unless open)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._policy.cooldown_s - self._clock())

    def window(self) -> tuple[int, int]:
        """(calls, failures) in the current window."""
        self._prune(self._clock())
        return len(self._outcomes), self._failures

    def _record(self, *, ok: bool) -> None:
        now = self._clock()
        self._prune(now)
        self._outcomes.append((now, ok))
        if not ok:
            self._failures += 1

    def _trip_if_failing(self) -> None:
        """Evaluated on every outcome (like resilience4j): a success landing in a failing window opens it too."""
        calls = len(self._outcomes)
        if calls >= self._policy.min_calls and self._failures / calls >= self._policy.error_ratio:
            self._opened_at = self._clock()

    def _prune(self, now: float) -> None:
        horizon = now - self._policy.window_s
        outcomes = self._outcomes
        while outcomes and outcomes[0][0] < horizon:
            if not outcomes.popleft()[1]:
                self._failures -= 1

    def _close(self) -> None:
        self._opened_at = None
        self._probing = False
        self._outcomes.clear()
        self._failures = 0
