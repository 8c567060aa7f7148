"""When a lease that looks expired is believed dead.

A lease's end is written by its holder's wall clock and read against the reader's. A clock stepped forward, clocks
that disagree between machines, or a pause of the whole host (every process wakes to find every lease "expired",
its holder about to renew it) would let an instance take a live holder's turn and close it with AGENT_DOWN. So an
instance believes a lease dead only once it has seen that very lease (same token, same end) stay expired for
`grace_s` on its own monotonic clock: long enough for a live holder to renew it at least twice.
"""

from __future__ import annotations

from codelab_agent_runtime.store.sessions import HeldLease


def renewal_interval(lease_ttl_s: float) -> float:
    """How often a step renews its lease: a third of its time to live, at most every second."""
    return min(lease_ttl_s / 3, 1.0)


def grace(lease_ttl_s: float) -> float:
    return max(lease_ttl_s / 2, 2 * renewal_interval(lease_ttl_s))


class ExpiryWatch:
    def __init__(self, grace_s: float) -> None:
        self._grace_s = grace_s
        self._seen: dict[str, tuple[HeldLease, float]] = {}

    def dead(self, expired: list[HeldLease], now: float) -> list[HeldLease]:
        """Of the leases a sweep found expired at monotonic time `now`, those seen unchanged for the grace period.
        A lease no longer reported (renewed, released or taken) is forgotten."""
        seen: dict[str, tuple[HeldLease, float]] = {}
        dead: list[HeldLease] = []
        for lease in expired:
            earlier = self._seen.get(lease.session_id)
            since = earlier[1] if earlier is not None and earlier[0] == lease else now
            seen[lease.session_id] = (lease, since)
            if now - since >= self._grace_s:
                dead.append(lease)
        self._seen = seen
        return dead
