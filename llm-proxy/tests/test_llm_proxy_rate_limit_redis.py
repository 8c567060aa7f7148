"""Rate limits kept in the real Redis (127.0.0.1:6379): the backend itself, and one limit shared by two proxies."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from codelab_common.testing import FakeOpenAI, free_port, wait_for_health
from codelab_llm_proxy.services.rate_limit.backend import Charge, Settlement
from codelab_llm_proxy.services.rate_limit.redis import RedisBackend
from tests.fixtures.llm_proxy import write_models_file

REDIS_URL = "redis://127.0.0.1:6379/0"
KEY = "redis-test-internal-key"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own; every key under it is deleted afterwards."""
    name = f"codelab-test:{uuid.uuid4().hex}"
    yield name
    redis = Redis.from_url(REDIS_URL)
    keys = [k async for k in redis.scan_iter(match=f"{name}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


@pytest.fixture
async def backend(prefix: str) -> AsyncIterator[RedisBackend]:
    store = RedisBackend(REDIS_URL, prefix)
    yield store
    await store.close()


async def test_redis_admits_exactly_the_limit_atomically(backend: RedisBackend) -> None:
    charges = [Charge("rpm:ip:1", 3, 1), Charge("tpm:ip:1", 1000, 300)]
    results = [await backend.acquire(charges, 60_000) for _ in range(4)]
    assert [r.allowed for r in results] == [True, True, True, False]
    assert [b.used for b in results[2].buckets] == [3, 900]
    refused = results[3]
    assert 0 < refused.retry_after_ms <= 60_000
    assert [b.used for b in refused.buckets] == [3, 900]  # a refusal charges nothing


async def test_redis_settlement_frees_tokens_in_its_own_window_only(backend: RedisBackend) -> None:
    charge = [Charge("tpm:ip:2", 1000, 600)]
    first = await backend.acquire(charge, 60_000)
    assert not (await backend.acquire(charge, 60_000)).allowed
    await backend.settle([Settlement("tpm:ip:2", first.buckets[0].window_start_ms - 1, -600)])  # stale: ignored
    assert not (await backend.acquire(charge, 60_000)).allowed
    await backend.settle([Settlement("tpm:ip:2", first.buckets[0].window_start_ms, -550)])  # used 50 of 600
    second = await backend.acquire(charge, 60_000)
    assert second.allowed and second.buckets[0].used == 650


async def test_redis_windows_reset(backend: RedisBackend) -> None:
    charge = [Charge("rpm:ip:3", 1, 1)]
    assert (await backend.acquire(charge, 200)).allowed
    assert not (await backend.acquire(charge, 200)).allowed
    await asyncio.sleep(0.25)
    assert (await backend.acquire(charge, 200)).allowed


@pytest.fixture
def proxies(fake_upstream: FakeOpenAI, tmp_path: Path, prefix: str) -> Iterator[list[str]]:
    """Two `python -m codelab_llm_proxy` processes sharing one Redis limit of 5 requests per minute per caller."""
    models = write_models_file(
        tmp_path / "models.yaml",
        [{"name": "fake-model", "base_url": fake_upstream.base_url, "context_window": 8192}],
    )
    ports = [free_port(), free_port()]
    env = {
        **os.environ,
        "LLM_PROXY__INTERNAL_API_KEY": KEY,
        "LLM_PROXY__MODELS_FILE": str(models),
        "LLM_PROXY__REDIS_URL": REDIS_URL,
        "LLM_PROXY__REDIS_KEY_PREFIX": prefix,
        "LLM_PROXY__RATE_LIMIT_RPM": "5",
        "LLM_PROXY__LOG_LEVEL": "WARNING",
    }
    logs = (tmp_path / "proxies.log").open("wb")
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "codelab_llm_proxy"],
            env={**env, "LLM_PROXY__PORT": str(port)},
            stdout=logs,
            stderr=subprocess.STDOUT,
        )
        for port in ports
    ]
    try:
        yield [f"http://127.0.0.1:{port}" for port in ports]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        logs.close()


async def test_two_proxy_processes_share_one_limit(proxies: list[str], fake_upstream: FakeOpenAI) -> None:
    await asyncio.gather(*(wait_for_health(url, timeout=20) for url in proxies))
    body = orjson.dumps({"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]})
    async with aiohttp.ClientSession(headers={"X-Internal-Auth": KEY}) as session:

        async def ask(url: str) -> tuple[int, dict[str, str]]:
            async with session.post(f"{url}/v1/chat/completions", data=body) as response:
                await response.read()
                return response.status, dict(response.headers)

        results = await asyncio.gather(*(ask(url) for url in proxies for _ in range(3)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 5 + [429]
    remaining = sorted(int(h["x-ratelimit-remaining-requests"]) for status, h in results if status == 200)
    assert remaining == [0, 1, 2, 3, 4]  # one counter: each admission saw every earlier one, whichever process
    assert len(fake_upstream.requests) == 5
