"""Rate limits as a caller sees them over HTTP: 429s in OpenAI's shape, headers, identities, usage settlement."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from codelab_common.sse import iter_sse
from codelab_common.testing import FakeOpenAI, serve_app
from codelab_llm_proxy.core.config import Settings
from codelab_llm_proxy.main import create_app
from tests.fixtures.llm_proxy import LLM_PROXY_TEST_KEY, write_models_file

CALLER_KEY = "sk-caller-one-0123456789"
USER = [{"role": "user", "content": "hello"}]


def model(upstream: FakeOpenAI, name: str = "fake-model", **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "upstream_model": "fake-model",
        "base_url": upstream.base_url,
        "context_window": 8192,
        **extra,
    }


@asynccontextmanager
async def proxy(
    upstream: FakeOpenAI, tmp_path: Path, models: list[dict[str, object]] | None = None, **settings: Any
) -> AsyncIterator[str]:
    models_file = write_models_file(tmp_path / "models.yaml", models or [model(upstream)])
    app = create_app(
        Settings(internal_api_key=LLM_PROXY_TEST_KEY, models_file=models_file, **settings)  # type: ignore[arg-type]
    )
    async with serve_app(app) as url:
        yield url


async def post(
    url: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
    local_ip: str = "127.0.0.1",
) -> tuple[int, dict[str, str], bytes]:
    """One request from `local_ip` (any 127.x address reaches the loopback listener): status, headers, raw body."""
    connector = aiohttp.TCPConnector(local_addr=(local_ip, 0))
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        session.post(
            f"{url}/v1/chat/completions",
            data=orjson.dumps(body),
            headers=headers if headers is not None else {"X-Internal-Auth": LLM_PROXY_TEST_KEY},
        ) as response,
    ):
        return response.status, dict(response.headers), await response.read()


def assert_rate_limited(status: int, headers: dict[str, str], raw: bytes, kind: str) -> None:
    assert status == 429
    error = orjson.loads(raw)["error"]
    assert error["type"] == kind and error["code"] == "rate_limit_exceeded" and error["message"]
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert headers[f"x-ratelimit-remaining-{kind}"] == "0" or kind == "tokens"


async def test_rpm_answers_429_in_openai_shape_with_headers(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    async with proxy(fake_upstream, tmp_path, rate_limit_rpm=2) as url:
        results = [await post(url, {"model": "fake-model", "messages": USER}) for _ in range(3)]
    (s1, h1, _), (s2, h2, _), (s3, h3, raw) = results
    assert (s1, s2) == (200, 200)
    assert h1["x-ratelimit-limit-requests"] == "2"
    assert (h1["x-ratelimit-remaining-requests"], h2["x-ratelimit-remaining-requests"]) == ("1", "0")
    assert_rate_limited(s3, h3, raw, "requests")
    assert len(fake_upstream.requests) == 2  # the refused request never reached the model


async def test_openai_sdk_sees_a_rate_limit_error(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    async with proxy(fake_upstream, tmp_path, rate_limit_rpm=1, caller_keys=[CALLER_KEY]) as url:
        client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=CALLER_KEY, max_retries=0)
        answer = await client.chat.completions.create(model="fake-model", messages=USER)  # type: ignore[arg-type]
        assert answer.choices[0].message.content
        with pytest.raises(openai.RateLimitError) as refused:
            await client.chat.completions.create(model="fake-model", messages=USER)  # type: ignore[arg-type]
        await client.close()
    assert refused.value.status_code == 429 and refused.value.response.headers["retry-after"]


async def test_streams_are_refused_before_any_byte(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    async with proxy(fake_upstream, tmp_path, rate_limit_rpm=1) as url:
        assert (await post(url, {"model": "fake-model", "messages": USER, "stream": True}))[0] == 200
        status, headers, raw = await post(url, {"model": "fake-model", "messages": USER, "stream": True})
    assert_rate_limited(status, headers, raw, "requests")
    assert headers["Content-Type"] == "application/json"


async def test_per_model_limits(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    models = [model(fake_upstream, "small", rpm=1), model(fake_upstream, "big")]
    async with proxy(fake_upstream, tmp_path, models) as url:
        assert (await post(url, {"model": "small", "messages": USER}))[0] == 200
        status, headers, raw = await post(url, {"model": "small", "messages": USER}, local_ip="127.0.0.2")
        assert_rate_limited(status, headers, raw, "requests")  # a model limit holds across callers
        assert "model:small" in orjson.loads(raw)["error"]["message"]
        assert [(await post(url, {"model": "big", "messages": USER}))[0] for _ in range(3)] == [200] * 3


async def test_ip_fallback_and_caller_keys_are_separate_identities(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    body = {"model": "fake-model", "messages": USER}
    async with proxy(fake_upstream, tmp_path, rate_limit_rpm=1, caller_keys=[CALLER_KEY]) as url:
        assert (await post(url, body))[0] == 200
        assert (await post(url, body))[0] == 429  # the shared internal key: limited per client IP
        assert (await post(url, body, local_ip="127.0.0.2"))[0] == 200  # another IP has its own bucket
        keyed = {"Authorization": f"Bearer {CALLER_KEY}"}
        assert (await post(url, body, keyed))[0] == 200  # a caller key has its own bucket, whatever the IP
        status, _, raw = await post(url, body, keyed, local_ip="127.0.0.3")
        assert status == 429
        assert CALLER_KEY not in raw.decode()


async def test_bearer_auth_is_accepted_and_a_wrong_bearer_is_401(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    body = {"model": "fake-model", "messages": USER}
    async with proxy(fake_upstream, tmp_path, caller_keys=[CALLER_KEY]) as url:
        assert (await post(url, body, {"Authorization": f"Bearer {LLM_PROXY_TEST_KEY}"}))[0] == 200
        assert (await post(url, body, {"Authorization": f"Bearer {CALLER_KEY}"}))[0] == 200
        assert (await post(url, body, {"X-Internal-Auth": CALLER_KEY}))[0] == 200
        status, _, raw = await post(url, body, {"Authorization": "Bearer sk-wrong"})
        assert status == 401 and orjson.loads(raw)["error"]["code"] == "UNAUTHORIZED"
        assert (await post(url, body, {"Authorization": LLM_PROXY_TEST_KEY}))[0] == 401  # no "Bearer " scheme
    assert len(fake_upstream.requests) == 3


async def test_no_limit_configured_means_no_rate_limit_headers(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    async with proxy(fake_upstream, tmp_path) as url:
        status, headers, _ = await post(url, {"model": "fake-model", "messages": USER, "stream": True})
    assert status == 200 and not any(h.lower().startswith("x-ratelimit") for h in headers)
    assert "stream_options" not in fake_upstream.requests[0]  # nothing asked of the upstream on our behalf


async def stream_events(url: str, body: dict[str, Any]) -> tuple[dict[str, str], list[Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/v1/chat/completions",
            data=orjson.dumps({**body, "stream": True}),
            headers={"X-Internal-Auth": LLM_PROXY_TEST_KEY},
        ) as response,
    ):
        assert response.status == 200
        events = [e.data if e.data == "[DONE]" else orjson.loads(e.data) async for e in iter_sse(response.content)]
        return dict(response.headers), events


async def test_stream_usage_settles_tokens_and_stays_hidden(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    # ~20 prompt tokens + 300 max tokens reserved (well over half the limit); the fake reports 15 used.
    body = {"model": "fake-model", "messages": USER, "max_tokens": 300}
    async with proxy(fake_upstream, tmp_path, rate_limit_tpm=500) as url:
        fake_upstream.reply_text("first answer")
        first_headers, events = await stream_events(url, body)
        fake_upstream.reply_text("second answer")
        second_headers, _ = await stream_events(url, body)  # fits only because the first was settled at 15
    assert fake_upstream.requests[0]["stream_options"] == {"include_usage": True}
    assert events[-1] == "[DONE]"
    assert all("usage" not in e for e in events[:-1])  # the client did not ask for usage, so sees none
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1]) == "first answer"
    reserved = 500 - int(first_headers["x-ratelimit-remaining-tokens"])
    assert reserved > 300
    assert int(second_headers["x-ratelimit-remaining-tokens"]) == 500 - 15 - reserved


async def test_stream_usage_requested_by_the_client_is_kept(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    body = {"model": "fake-model", "messages": USER, "stream_options": {"include_usage": True}}
    async with proxy(fake_upstream, tmp_path, rate_limit_tpm=100_000) as url:
        _, events = await stream_events(url, body)
    assert events[-2]["usage"]["total_tokens"] == 15 and events[-2]["choices"] == []


async def test_non_stream_usage_settles_and_failures_release(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    body = {"model": "fake-model", "messages": USER, "max_tokens": 300}
    async with proxy(fake_upstream, tmp_path, rate_limit_tpm=500) as url:
        fake_upstream.reply_error(400, "context too long")
        assert (await post(url, body))[0] == 400  # nothing generated: the whole reservation is given back
        status, first, _ = await post(url, body)
        status2, second, _ = await post(url, body)
    assert status == status2 == 200
    reserved = 500 - int(first["x-ratelimit-remaining-tokens"])
    assert int(second["x-ratelimit-remaining-tokens"]) == 500 - 15 - reserved
