"""What one client may cost the gateway: checks at the handshake, a frame rate, and a budget for error logs."""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.types import Scope

from codelab_common.protocol import ErrorCode
from codelab_gateway.core.config import Settings


@dataclass(frozen=True, slots=True)
class Refusal:
    """A handshake the gateway turns down: the HTTP status and error code it answers with, and why."""

    status: int
    code: ErrorCode
    message: str


def handshake_refusal(scope: Scope, settings: Settings) -> Refusal | None:
    """Too large a handshake, or an `Origin` that is not allowed; None when the handshake may go on."""
    size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
    size += sum(len(name) + len(value) + 4 for name, value in scope["headers"])
    if size > settings.max_handshake_bytes:
        return Refusal(431, ErrorCode.TOO_LARGE, f"the handshake is over {settings.max_handshake_bytes} bytes")
    for name, value in scope["headers"]:
        if name == b"origin" and value.decode("latin-1") not in settings.allowed_origins:
            return Refusal(
                403,
                ErrorCode.UNAUTHORIZED,
                "this Origin is not allowed to connect (GATEWAY__ALLOWED_ORIGINS lists the allowed ones)",
            )
    return None


class FrameRate:
    """A token bucket: `rate` frames a second on average and up to `burst` at once."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class DropWindow:
    """Frames dropped for the rate within the current window of `window_s`: a client flooding at any speed above
    the rate reaches the limit within a window, however often the bucket lets one of its frames through."""

    __slots__ = ("_dropped", "_start", "_window")

    def __init__(self, window_s: float = 10.0) -> None:
        self._window = window_s
        self._start = 0.0
        self._dropped = 0

    def count(self) -> int:
        """Count one drop; how many the window holds now (1: the first of the window)."""
        now = time.monotonic()
        if now - self._start >= self._window:
            self._start, self._dropped = now, 0
        self._dropped += 1
        return self._dropped


class LogBudget:
    """How often one connection may write an error line: the first `burst`, then one per `interval_s`, each
    saying how many were left out before it. A client sending frames that fail cannot flood the log."""

    __slots__ = ("_burst", "_interval", "_last", "_spent", "_suppressed")

    def __init__(self, burst: int = 5, interval_s: float = 60.0) -> None:
        self._burst = burst
        self._interval = interval_s
        self._spent = 0
        self._last = 0.0
        self._suppressed = 0

    def allow(self) -> int | None:
        """None: do not log this one; otherwise how many were suppressed since the last line written."""
        now = time.monotonic()
        if self._spent < self._burst or now - self._last >= self._interval:
            self._spent += 1
            self._last = now
            suppressed, self._suppressed = self._suppressed, 0
            return suppressed
        self._suppressed += 1
        return None
