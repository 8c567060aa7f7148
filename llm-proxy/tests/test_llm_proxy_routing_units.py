"""The routing layer's pure parts: circuit-breaker states, backoff and Retry-After, the deployments config."""

from __future__ import annotations

import email.utils
import time
from pathlib import Path

import pytest

from codelab_llm_proxy.core.config import Settings
from codelab_llm_proxy.core.model_registry import (
    CircuitBreakerPolicy,
    ModelConfigError,
    RetryPolicy,
    build_registry,
)
from codelab_llm_proxy.main import create_app
from codelab_llm_proxy.services.routing.circuit_breaker import BreakerState, CircuitBreaker
from codelab_llm_proxy.services.routing.retry import parse_retry_after, retry_delay
from tests.fixtures.llm_proxy import write_models_file


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_breaker_needs_min_calls_and_the_error_ratio() -> None:
    clock = Clock()
    breaker = CircuitBreaker(CircuitBreakerPolicy(window_s=10, min_calls=4, error_ratio=0.5, cooldown_s=5), clock)
    for _ in range(3):
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED, "three calls are below min_calls"
    breaker.record_success()
    assert breaker.state is BreakerState.OPEN and breaker.retry_in() == 5
    assert not breaker.try_acquire()


def test_old_outcomes_leave_the_window() -> None:
    clock = Clock()
    breaker = CircuitBreaker(CircuitBreakerPolicy(window_s=10, min_calls=2, error_ratio=0.6, cooldown_s=5), clock)
    breaker.record_failure()
    clock.now += 11
    breaker.record_failure()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.window() == (2, 1)
    breaker.record_success()
    breaker.record_success()
    assert breaker.window() == (4, 1)


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(CircuitBreakerPolicy(window_s=10, min_calls=1, error_ratio=1, cooldown_s=5), clock)
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 5
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.try_acquire() and not breaker.try_acquire()
    breaker.release()
    assert breaker.try_acquire(), "a probe whose client left frees the slot"
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and breaker.retry_in() == 5
    clock.now += 5
    assert breaker.try_acquire()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.window() == (0, 0)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_delay_s=0.1, max_delay_s=0.5, max_retry_after_s=3)
    for attempt, ceiling in [(0, 0.1), (1, 0.2), (2, 0.4), (3, 0.5), (9, 0.5)]:
        delays = {retry_delay(policy, attempt, None) for _ in range(20)}
        assert all(d is not None and ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1, "jittered"
    assert retry_delay(policy, 0, 2.5) == 2.5
    assert retry_delay(policy, 0, 3.5) is None, "longer than the cap: move on instead of waiting"


def test_retry_after_in_seconds_or_as_an_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    parsed = parse_retry_after(in_ten)
    assert parsed is not None and 8 <= parsed <= 10
    assert parse_retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0
    for junk in (None, "", "soon", "nan"):
        assert parse_retry_after(junk) is None


def settings(tmp_path: Path, models: list[dict[str, object]]) -> Settings:
    path = write_models_file(tmp_path / "m.yaml", models)
    return Settings(internal_api_key="k", models_file=path)  # type: ignore[arg-type]


def test_deployments_and_fallbacks_resolve_in_order(tmp_path: Path) -> None:
    registry = build_registry(
        settings(
            tmp_path,
            [
                {
                    "name": "a",
                    "base_url": "http://one/v1/",
                    "api_key_env": "KEY_A",
                    "context_window": 10,
                    "deployments": [{}, {"id": "a-eu", "base_url": "http://two/v1", "provider": "vllm"}],
                    "fallbacks": ["b"],
                },
                {"name": "b", "base_url": "http://three/v1", "context_window": 10, "upstream_model": "bee"},
            ],
        )
    )
    chain = registry.route("a")
    assert [(d.deployment_id, d.base_url, d.provider) for d in chain] == [
        ("a#0", "http://one/v1", "openai-compatible"),
        ("a-eu", "http://two/v1", "vllm"),
        ("b", "http://three/v1", "openai-compatible"),
    ]
    assert chain[1].api_key_env == "KEY_A" and chain[2].upstream_name == "bee"


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ([{"name": "a", "context_window": 10}], "base_url or a deployments list"),
        ([{"name": "a", "context_window": 10, "deployments": [{"id": "x"}]}], "has no base_url"),
        ([{"name": "a", "base_url": "http://x", "context_window": 10, "fallbacks": ["zz"]}], "fallback 'zz'"),
        ([{"name": "a", "base_url": "http://x", "context_window": 10, "fallbacks": ["a"]}], "itself"),
        (
            [{"name": "a", "base_url": "http://x", "context_window": 10, "deployments": [{"id": "d"}, {"id": "d"}]}],
            "used twice",
        ),
        ([{"name": "a", "base_url": "http://x", "context_window": 10, "retry": {"max_attempts": 0}}], "max_attempts"),
    ],
)
def test_bad_routing_config_fails_at_startup(tmp_path: Path, models: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ModelConfigError, match=message):
        create_app(settings(tmp_path, models))


def test_unknown_provider_in_a_deployment_fails_at_startup(tmp_path: Path) -> None:
    models: list[dict[str, object]] = [
        {"name": "a", "base_url": "http://x", "context_window": 10, "deployments": [{"provider": "nope"}]}
    ]
    with pytest.raises(ValueError, match="unknown provider 'nope'"):
        create_app(settings(tmp_path, models))


def test_the_example_models_file_is_valid() -> None:
    example = Path(__file__).parents[1] / "models.example.yaml"
    registry = build_registry(Settings(internal_api_key="k", models_file=example))  # type: ignore[arg-type]
    assert len(registry) >= 4
    create_app(Settings(internal_api_key="k", models_file=example))  # type: ignore[arg-type]
