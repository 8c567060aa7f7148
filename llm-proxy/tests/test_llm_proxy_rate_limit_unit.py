"""The rate-limit policy on the in-memory backend, with a hand-driven clock (no sleeping)."""

from __future__ import annotations

from typing import Any

import pytest

from codelab_llm_proxy.services.rate_limit import Caller, Limits, RateLimited, RateLimiter
from codelab_llm_proxy.services.rate_limit.memory import MemoryBackend

WINDOW_S = 60.0
ALICE = Caller((), "10.0.0.1")
BOB = Caller((), "10.0.0.2")


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000

    def __call__(self) -> int:
        return self.ms

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def limiter(
    clock: Clock,
    rpm: int | None = None,
    tpm: int | None = None,
    models: dict[str, Limits] | None = None,
    caller_keys: tuple[str, ...] = (),
) -> RateLimiter:
    return RateLimiter(
        MemoryBackend(clock),
        caller_limits=Limits(rpm, tpm),
        model_limits=models or {},
        window_s=WINDOW_S,
        default_max_tokens=100,
        caller_keys=caller_keys,
    )


def body(max_tokens: int | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    if max_tokens is not None:
        request["max_tokens"] = max_tokens
    return request


async def test_rpm_admits_exactly_the_limit_then_refuses(clock: Clock) -> None:
    rl = limiter(clock, rpm=3)
    remaining = []
    for _ in range(3):
        ticket = await rl.admit(ALICE, "m", body(), 40)
        remaining.append(ticket.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    assert ticket.headers["x-ratelimit-limit-requests"] == "3"
    clock.advance(59)
    with pytest.raises(RateLimited) as refused:
        await rl.admit(ALICE, "m", body(), 40)
    assert refused.value.status == 429 and refused.value.type == "requests"
    assert refused.value.code == "rate_limit_exceeded"
    assert refused.value.headers()["retry-after"] == "1"
    assert refused.value.headers()["x-ratelimit-remaining-requests"] == "0"


async def test_a_refused_request_consumes_nothing_and_the_window_resets(clock: Clock) -> None:
    rl = limiter(clock, rpm=1)
    await rl.admit(ALICE, "m", body(), 40)
    for _ in range(5):
        with pytest.raises(RateLimited):
            await rl.admit(ALICE, "m", body(), 40)
    clock.advance(WINDOW_S)
    ticket = await rl.admit(ALICE, "m", body(), 40)
    assert ticket.headers["x-ratelimit-remaining-requests"] == "0"


async def test_callers_have_separate_buckets(clock: Clock) -> None:
    rl = limiter(clock, rpm=1)
    await rl.admit(ALICE, "m", body(), 40)
    await rl.admit(BOB, "m", body(), 40)
    with pytest.raises(RateLimited):
        await rl.admit(ALICE, "m", body(), 40)


async def test_tokens_are_reserved_then_settled_with_real_usage(clock: Clock) -> None:
    rl = limiter(clock, tpm=1000)
    # 400 body characters ≈ 100 prompt tokens, + 400 max tokens: 500 reserved per request.
    first = await rl.admit(ALICE, "m", body(400), 400)
    assert first.headers["x-ratelimit-remaining-tokens"] == "500"
    second = await rl.admit(ALICE, "m", body(400), 400)
    assert second.headers["x-ratelimit-remaining-tokens"] == "0"
    with pytest.raises(RateLimited) as refused:
        await rl.admit(ALICE, "m", body(400), 400)
    assert refused.value.type == "tokens"
    await first.settle({"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50})
    # 450 freed: a request reserving exactly the 450 left fits (the limit is reached, not tripped early) ...
    exact = await rl.admit(ALICE, "m", body(350), 400)
    assert exact.headers["x-ratelimit-remaining-tokens"] == "0"
    # ... and one token more does not.
    with pytest.raises(RateLimited):
        await rl.admit(ALICE, "m", body(1), 4)


async def test_settling_twice_or_without_usage_changes_nothing(clock: Clock) -> None:
    rl = limiter(clock, tpm=1000)
    ticket = await rl.admit(ALICE, "m", body(400), 400)
    await ticket.settle(None)  # no usage came: the estimate stands
    await ticket.settle({"total_tokens": 0})  # already settled... once is all
    probe = await rl.admit(ALICE, "m", body(400), 400)
    assert probe.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_usage_without_total_is_summed(clock: Clock) -> None:
    rl = limiter(clock, tpm=1000)
    ticket = await rl.admit(ALICE, "m", body(400), 400)
    await ticket.settle({"prompt_tokens": 100, "completion_tokens": 100})
    probe = await rl.admit(ALICE, "m", body(400), 400)
    assert probe.headers["x-ratelimit-remaining-tokens"] == "300"


async def test_release_gives_back_the_whole_reservation(clock: Clock) -> None:
    rl = limiter(clock, tpm=1000)
    failed = await rl.admit(ALICE, "m", body(400), 400)
    await failed.release()
    probe = await rl.admit(ALICE, "m", body(400), 400)
    assert probe.headers["x-ratelimit-remaining-tokens"] == "500"


async def test_settlement_never_touches_a_newer_window(clock: Clock) -> None:
    rl = limiter(clock, tpm=1000)
    old = await rl.admit(ALICE, "m", body(400), 400)
    clock.advance(WINDOW_S + 1)
    await rl.admit(ALICE, "m", body(400), 400)
    await old.settle({"total_tokens": 0})  # would free 500 in the new window if it applied there
    probe = await rl.admit(ALICE, "m", body(400), 400)
    assert probe.headers["x-ratelimit-remaining-tokens"] == "0"


async def test_missing_max_tokens_reserves_the_default(clock: Clock) -> None:
    rl = limiter(clock, tpm=1000)
    ticket = await rl.admit(ALICE, "m", body(), 40)  # 10 prompt + the default 100
    assert ticket.headers["x-ratelimit-remaining-tokens"] == "890"


async def test_a_request_larger_than_the_token_limit_is_refused_at_once(clock: Clock) -> None:
    rl = limiter(clock, tpm=1000)
    with pytest.raises(RateLimited) as refused:
        await rl.admit(ALICE, "m", body(5000), 40)
    assert refused.value.type == "tokens" and "request too large" in refused.value.message


async def test_model_limits_cap_all_callers_together(clock: Clock) -> None:
    rl = limiter(clock, models={"small": Limits(rpm=2)})
    await rl.admit(ALICE, "small", body(), 40)
    await rl.admit(BOB, "small", body(), 40)
    with pytest.raises(RateLimited) as refused:
        await rl.admit(Caller((), "10.0.0.3"), "small", body(), 40)
    assert "model:small" in refused.value.message
    await rl.admit(ALICE, "other", body(), 40)  # other models are not limited


async def test_caller_keys_are_identities_by_hash_never_by_value(clock: Clock) -> None:
    rl = limiter(clock, rpm=1, caller_keys=("sk-caller-secret",))
    keyed = Caller.from_headers({"authorization": "Bearer sk-caller-secret"}, "10.0.0.1")
    shared = Caller.from_headers({"x-internal-auth": "the-internal-key"}, "10.0.0.1")
    assert rl.identity(shared) == "ip:10.0.0.1"
    assert rl.identity(keyed).startswith("key:") and "sk-caller-secret" not in rl.identity(keyed)
    await rl.admit(keyed, "m", body(), 40)
    await rl.admit(shared, "m", body(), 40)  # same IP, but the key has its own bucket
    with pytest.raises(RateLimited) as refused:
        await rl.admit(keyed, "m", body(), 40)
    assert "sk-caller-secret" not in refused.value.message
    # whichever header carries it, alongside whatever else, the caller key picks the bucket
    mixed = Caller.from_headers({"x-internal-auth": "junk", "authorization": "bearer sk-caller-secret"}, "10.9.9.9")
    assert rl.identity(mixed) == rl.identity(keyed)


async def test_expired_buckets_are_swept(clock: Clock) -> None:
    backend = MemoryBackend(clock)
    rl = RateLimiter(backend, caller_limits=Limits(rpm=5), model_limits={}, window_s=WINDOW_S, default_max_tokens=100)
    for i in range(100):
        await rl.admit(Caller((), f"10.1.0.{i}"), "m", body(), 40)
    assert len(backend) == 100
    clock.advance(WINDOW_S + 1)
    await rl.admit(ALICE, "m", body(), 40)
    assert len(backend) == 1
