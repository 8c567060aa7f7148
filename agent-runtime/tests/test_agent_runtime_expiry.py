"""When an instance believes another's lease dead: only after seeing that very lease stay expired for the grace
period on its own clock, whatever the wall clocks say."""

from __future__ import annotations

from codelab_agent_runtime.store.sessions import HeldLease
from codelab_agent_runtime.turns.expiry import ExpiryWatch, grace, renewal_interval


def test_a_lease_is_dead_only_once_seen_unchanged_for_the_grace_period() -> None:
    watch = ExpiryWatch(grace_s=2.0)
    lease = HeldLease("s1", token=3, until=100.0)
    assert watch.dead([lease], now=10.0) == [], "first sighting: a live holder may be about to renew"
    assert watch.dead([lease], now=11.9) == []
    assert watch.dead([lease], now=12.0) == [lease]


def test_a_renewed_or_vanished_lease_starts_the_wait_again() -> None:
    watch = ExpiryWatch(grace_s=2.0)
    watch.dead([HeldLease("s1", 3, 100.0)], now=10.0)
    renewed = HeldLease("s1", 3, 101.0)
    assert watch.dead([renewed], now=12.5) == [], "the holder renewed: it is alive"
    assert watch.dead([renewed], now=14.5) == [renewed]

    watch.dead([HeldLease("s2", 1, 50.0)], now=20.0)
    watch.dead([], now=21.0)  # released or taken meanwhile
    assert watch.dead([HeldLease("s2", 1, 50.0)], now=22.5) == []


def test_the_grace_period_covers_two_renewals() -> None:
    for ttl in (0.5, 1.0, 2.0, 10.0, 60.0):
        assert grace(ttl) >= 2 * renewal_interval(ttl)
        assert grace(ttl) >= ttl / 2
