"""When things go wrong upstream: retries, Retry-After, failover, timeouts, circuit breakers, 413, disconnects."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from codelab_common.testing import FakeOpenAI, free_port, serve_app
from codelab_llm_proxy.core.config import Settings
from codelab_llm_proxy.main import create_app
from tests.fixtures.llm_proxy import LLM_PROXY_TEST_KEY, RunningLLMProxy, write_models_file

USER = [{"role": "user", "content": "hello"}]
FAST_RETRY = {"max_attempts": 3, "base_delay_s": 0.01, "max_delay_s": 0.05, "max_retry_after_s": 1.0}


def model(name: str, base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "upstream_model": "fake-model",
        "base_url": base_url,
        "context_window": 4096,
        "retry": FAST_RETRY,
        **extra,
    }


@asynccontextmanager
async def proxy(
    tmp_path: Path, upstream: FakeOpenAI, models: list[dict[str, Any]], **settings: Any
) -> AsyncIterator[RunningLLMProxy]:
    models_file = write_models_file(tmp_path / "routing-models.yaml", models)
    app = create_app(Settings(internal_api_key=LLM_PROXY_TEST_KEY, models_file=models_file, **settings))  # type: ignore[arg-type]
    async with serve_app(app) as url:
        yield RunningLLMProxy(url=url, api_key=LLM_PROXY_TEST_KEY, upstream=upstream, app=app)


@asynccontextmanager
async def second_upstream() -> AsyncIterator[FakeOpenAI]:
    upstream = FakeOpenAI(model="fake-model")
    async with serve_app(upstream.app) as url:
        upstream.base_url = f"{url}/v1"
        yield upstream


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops new SYNs, so connecting hangs (a connect timeout)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.05)
    try:
        yield port
    finally:
        for sock in (*fillers, server):
            sock.close()


def text_of(events: list[Any]) -> str:
    return "".join(
        e["choices"][0]["delta"].get("content") or "" for e in events if isinstance(e, dict) and e.get("choices")
    )


async def admin(proxy: RunningLLMProxy) -> dict[str, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{proxy.url}/admin/deployments", headers=proxy.headers) as response,
    ):
        assert response.status == 200
        return {row["deployment"]: row for row in (await response.json())["data"]}


@pytest.mark.parametrize("stream", [False, True])
async def test_transient_failures_are_retried_then_succeed(
    fake_upstream: FakeOpenAI, tmp_path: Path, stream: bool
) -> None:
    async with proxy(tmp_path, fake_upstream, [model("m", fake_upstream.base_url)]) as p:
        fake_upstream.reply_error(503, "overloaded")
        fake_upstream.reply_error(500, "hiccup")
        fake_upstream.reply_text("third time lucky")
        if stream:
            status, events = await p.stream({"model": "m", "messages": USER})
            assert status == 200 and text_of(events) == "third time lucky" and events[-1] == "[DONE]"
        else:
            status, answer = await p.chat({"model": "m", "messages": USER})
            assert status == 200 and answer["choices"][0]["message"]["content"] == "third time lucky"
    assert len(fake_upstream.requests) == 3


async def test_retry_after_is_waited_out(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    async with proxy(tmp_path, fake_upstream, [model("m", fake_upstream.base_url)]) as p:
        fake_upstream.reply_error(429, "slow down", headers={"Retry-After": "0.4"})
        fake_upstream.reply_text("ok")
        started = time.perf_counter()
        status, answer = await p.chat({"model": "m", "messages": USER})
        elapsed = time.perf_counter() - started
    assert status == 200 and answer["choices"][0]["message"]["content"] == "ok"
    assert 0.38 <= elapsed < 1.0, elapsed


async def test_persistent_429_is_passed_on_with_its_retry_after(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    async with proxy(tmp_path, fake_upstream, [model("m", fake_upstream.base_url)]) as p:
        for _ in range(3):
            fake_upstream.reply_error(429, "quota exceeded", headers={"Retry-After": "0.05"})
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{p.url}/v1/chat/completions", json={"model": "m", "messages": USER}, headers=p.headers) as r,
        ):
            assert r.status == 429 and r.headers["Retry-After"] == "1"
            assert "quota exceeded" in (await r.json())["error"]["message"]
        # A Retry-After longer than the policy's cap is not waited out: answered at once, passed on as is.
        fake_upstream.reply_error(429, "come back later", headers={"Retry-After": "120"})
        started = time.perf_counter()
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{p.url}/v1/chat/completions", json={"model": "m", "messages": USER}, headers=p.headers) as r,
        ):
            assert r.status == 429 and r.headers["Retry-After"] == "120"
        assert time.perf_counter() - started < 0.5
    assert len(fake_upstream.requests) == 4


@pytest.mark.parametrize("stream", [False, True])
async def test_fails_over_to_the_next_deployment(fake_upstream: FakeOpenAI, tmp_path: Path, stream: bool) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    entry = model("m", "", deployments=[{"id": "down", "base_url": down}, {"id": "up", "upstream_model": "other"}])
    entry["base_url"] = fake_upstream.base_url
    async with proxy(tmp_path, fake_upstream, [entry]) as p:
        fake_upstream.reply_text("from the second deployment")
        if stream:
            status, events = await p.stream({"model": "m", "messages": USER})
            assert status == 200 and text_of(events) == "from the second deployment"
        else:
            status, answer = await p.chat({"model": "m", "messages": USER})
            assert status == 200 and answer["model"] == "m"
            assert answer["choices"][0]["message"]["content"] == "from the second deployment"
    assert [r["model"] for r in fake_upstream.requests] == ["other"]


async def test_fails_over_to_a_fallback_model(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    async with second_upstream() as backup:
        models = [
            model("primary", fake_upstream.base_url, fallbacks=["backup"], retry={"max_attempts": 1}),
            model("backup", backup.base_url, upstream_model="backup-model"),
        ]
        async with proxy(tmp_path, fake_upstream, models) as p:
            fake_upstream.reply_error(500, "primary is down")
            backup.reply_text("backup answers")
            status, answer = await p.chat({"model": "primary", "messages": USER})
        assert status == 200 and answer["model"] == "primary"
        assert answer["choices"][0]["message"]["content"] == "backup answers"
        assert [r["model"] for r in backup.requests] == ["backup-model"]


async def test_every_deployment_failing_is_the_last_error(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    async with proxy(tmp_path, fake_upstream, [model("m", fake_upstream.base_url)]) as p:
        for _ in range(3):
            fake_upstream.reply_error(502, "bad gateway upstream")
        fake_upstream.reply_text("never asked for")
        status, answer = await p.chat({"model": "m", "messages": USER})
    assert status == 502 and "bad gateway upstream" in answer["error"]["message"]
    assert len(fake_upstream.requests) == 3


async def test_a_refused_request_is_not_retried_or_failed_over(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    entry = model("m", fake_upstream.base_url, deployments=[{"id": "a"}, {"id": "b"}])
    async with proxy(tmp_path, fake_upstream, [entry]) as p:
        fake_upstream.reply_error(400, "context too long")
        status, answer = await p.chat({"model": "m", "messages": USER})
    assert status == 400 and "context too long" in answer["error"]["message"]
    assert len(fake_upstream.requests) == 1


async def test_no_retry_after_the_first_byte(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    entry = model("m", fake_upstream.base_url, read_timeout_s=0.2, deployments=[{"id": "a"}, {"id": "b"}])
    async with proxy(tmp_path, fake_upstream, [entry]) as p:
        fake_upstream.reply_text("started then stalled", chunk_delay=1.0)
        status, events = await p.stream({"model": "m", "messages": USER})
    assert status == 200 and events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "[DONE]" not in events
    assert events[-1]["error"]["code"] == "upstream_timeout"
    assert len(fake_upstream.requests) == 1, "a started answer is never retried or sent elsewhere"


async def test_connect_timeout_is_a_504(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    with unanswered_port() as port:
        entry = model("m", f"http://127.0.0.1:{port}/v1", connect_timeout_s=0.2, retry={"max_attempts": 1})
        async with proxy(tmp_path, fake_upstream, [entry]) as p:
            started = time.perf_counter()
            status, answer = await p.chat({"model": "m", "messages": USER})
    assert status == 504 and answer["error"]["code"] == "upstream_timeout"
    assert time.perf_counter() - started < 1.5


async def test_first_token_timeout_is_a_504(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    entry = model("m", fake_upstream.base_url, first_token_timeout_s=0.2, retry={"max_attempts": 1})
    async with proxy(tmp_path, fake_upstream, [entry]) as p:
        fake_upstream.reply_text("too late", delay=1.0)
        started = time.perf_counter()
        status, events = await p.stream({"model": "m", "messages": USER})
    assert status == 504 and events[0]["error"]["code"] == "upstream_timeout"
    assert "first token" in events[0]["error"]["message"] and "0.2 s" in events[0]["error"]["message"]
    assert time.perf_counter() - started < 0.8


async def test_idle_timeout_after_the_first_byte_is_in_band(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    # A first-token limit longer than the idle one: the router itself then watches the gaps between chunks.
    entry = model("m", fake_upstream.base_url, first_token_timeout_s=2, read_timeout_s=0.2)
    async with proxy(tmp_path, fake_upstream, [entry]) as p:
        fake_upstream.reply_text("a b c d", chunk_delay=0.6, chunk_size=2)
        status, events = await p.stream({"model": "m", "messages": USER})
    assert status == 200 and "[DONE]" not in events
    assert "silent" in events[-1]["error"]["message"] and events[-1]["error"]["code"] == "upstream_timeout"


async def test_total_timeout(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    entry = model("m", fake_upstream.base_url, total_timeout_s=0.4, retry={"max_attempts": 1})
    async with proxy(tmp_path, fake_upstream, [entry]) as p:
        fake_upstream.reply_text("word " * 40, chunk_delay=0.05, chunk_size=5)
        status, events = await p.stream({"model": "m", "messages": USER})
        assert status == 200 and "[DONE]" not in events
        assert "did not finish" in events[-1]["error"]["message"]
        assert 0 < len(text_of(events)) < len("word " * 40)
        fake_upstream.reply_text("slow", delay=1.0)
        status, answer = await p.chat({"model": "m", "messages": USER})
        assert status == 504 and "0.4 s" in answer["error"]["message"]


BREAKER = {"window_s": 30, "min_calls": 2, "error_ratio": 0.5, "cooldown_s": 0.3}


async def test_breaker_opens_skips_the_deployment_and_a_probe_closes_it(
    fake_upstream: FakeOpenAI, tmp_path: Path
) -> None:
    async with second_upstream() as healthy:
        entry = model(
            "m",
            fake_upstream.base_url,
            retry={"max_attempts": 1},
            circuit_breaker=BREAKER,
            deployments=[{"id": "flaky"}, {"id": "healthy", "base_url": healthy.base_url}],
        )
        async with proxy(tmp_path, fake_upstream, [entry]) as p:
            for _ in range(2):
                fake_upstream.reply_error(500, "flaky")
                healthy.reply_text("healthy")
                assert (await p.chat({"model": "m", "messages": USER}))[0] == 200
            state = await admin(p)
            assert state["flaky"]["state"] == "open" and state["flaky"]["failures"] == 2
            assert state["healthy"]["state"] == "closed"

            healthy.reply_text("healthy")
            assert (await p.chat({"model": "m", "messages": USER}))[0] == 200
            assert len(fake_upstream.requests) == 2, "the open deployment is skipped"

            await asyncio.sleep(0.35)
            assert (await admin(p))["flaky"]["state"] == "half_open"
            fake_upstream.reply_text("recovered")
            status, answer = await p.chat({"model": "m", "messages": USER})
            assert status == 200 and answer["choices"][0]["message"]["content"] == "recovered"
            assert (await admin(p))["flaky"]["state"] == "closed"


async def test_all_circuits_open_is_a_503_with_retry_after(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    entry = model("m", fake_upstream.base_url, retry={"max_attempts": 1}, circuit_breaker={**BREAKER, "cooldown_s": 5})
    async with proxy(tmp_path, fake_upstream, [entry]) as p:
        for _ in range(2):
            fake_upstream.reply_error(500, "down")
            assert (await p.chat({"model": "m", "messages": USER}))[0] == 502
        for stream in (False, True):
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    f"{p.url}/v1/chat/completions",
                    json={"model": "m", "messages": USER, "stream": stream},
                    headers=p.headers,
                ) as r,
            ):
                assert r.status == 503 and 1 <= int(r.headers["Retry-After"]) <= 5
                error = (await r.json())["error"]
                assert error["code"] == "deployments_unavailable" and error["type"] == "service_unavailable"
    assert len(fake_upstream.requests) == 2


async def test_failed_probe_keeps_the_breaker_open(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    entry = model("m", fake_upstream.base_url, retry={"max_attempts": 1}, circuit_breaker=BREAKER)
    async with proxy(tmp_path, fake_upstream, [entry]) as p:
        for _ in range(2):
            fake_upstream.reply_error(500, "down")
            await p.chat({"model": "m", "messages": USER})
        await asyncio.sleep(0.35)
        fake_upstream.reply_error(500, "still down")
        assert (await p.chat({"model": "m", "messages": USER}))[0] == 502
        assert (await admin(p))["m"]["state"] == "open"
        assert (await p.chat({"model": "m", "messages": USER}))[0] == 503
    assert len(fake_upstream.requests) == 3


async def test_admin_deployments_needs_the_key(llm_proxy: RunningLLMProxy) -> None:
    async with aiohttp.ClientSession() as session:
        for headers in ({}, {"X-Internal-Auth": "wrong"}):
            async with session.get(f"{llm_proxy.url}/admin/deployments", headers=headers) as response:
                assert response.status == 401
    rows = await admin(llm_proxy)
    assert set(rows) == {"fake-model", "fake-json-model"}
    assert rows["fake-model"] | {"base_url": ""} == {
        "deployment": "fake-model",
        "model": "fake-model",
        "provider": "openai-compatible",
        "upstream_model": "fake-model",
        "base_url": "",
        "state": "closed",
        "state_code": 0,
        "calls": 0,
        "failures": 0,
        "error_ratio": 0.0,
        "retry_in_s": 0.0,
    }


async def test_body_over_the_limit_is_a_413_before_parsing(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    async with proxy(tmp_path, fake_upstream, [model("m", fake_upstream.base_url)], max_body_bytes=2000) as p:
        big = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 3000}]})

        async def chunked() -> AsyncIterator[bytes]:
            for start in range(0, len(big), 500):
                yield big[start : start + 500]

        async with aiohttp.ClientSession() as session:
            for data in (big, chunked(), b"{not json" + b" " * 3000):
                async with session.post(f"{p.url}/v1/chat/completions", data=data, headers=p.headers) as response:
                    assert response.status == 413
                    error = (await response.json())["error"]
                    assert error["code"] == "request_too_large" and "2000" in error["message"]
        fake_upstream.reply_text("small is fine")
        assert (await p.chat({"model": "m", "messages": USER}))[0] == 200
    assert len(fake_upstream.requests) == 1


async def test_client_disconnect_closes_the_upstream_request(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    async with proxy(tmp_path, fake_upstream, [model("m", fake_upstream.base_url, first_token_timeout_s=5)]) as p:
        fake_upstream.reply_text("word " * 200, chunk_delay=0.05, chunk_size=5)
        body = orjson.dumps({"model": "m", "messages": USER, "stream": True})
        async with aiohttp.ClientSession() as session:
            response = await session.post(f"{p.url}/v1/chat/completions", data=body, headers=p.headers)
            assert response.status == 200
            await response.content.readline()
            response.close()
        for _ in range(50):
            if fake_upstream.streams_cut:
                break
            await asyncio.sleep(0.02)
        assert fake_upstream.streams_cut == 1, "the upstream sees its connection closed within moments"
        assert (await admin(p))["m"]["calls"] == 0, "a client leaving says nothing about the deployment's health"


@pytest.mark.parametrize("stream", [False, True])
async def test_azure_openai_deployment_url_key_and_api_version(
    fake_upstream: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stream: bool
) -> None:
    monkeypatch.setenv("TEST_AZURE_KEY", "azure-secret")
    entry = {
        "name": "gpt-4o",
        "provider": "azure-openai",
        "base_url": fake_upstream.base_url.removesuffix("/v1"),
        "upstream_model": "my-gpt4o-deployment",
        "api_version": "2024-06-01",
        "api_key_env": "TEST_AZURE_KEY",
        "context_window": 128000,
    }
    async with proxy(tmp_path, fake_upstream, [entry]) as p:
        fake_upstream.reply_text("hello from azure")
        if stream:
            status, events = await p.stream({"model": "gpt-4o", "messages": USER})
            assert status == 200 and text_of(events) == "hello from azure" and events[-1] == "[DONE]"
        else:
            status, answer = await p.chat({"model": "gpt-4o", "messages": USER})
            assert status == 200 and answer["model"] == "gpt-4o"
            assert answer["choices"][0]["message"]["content"] == "hello from azure"
    (meta,) = fake_upstream.request_meta
    assert meta["path"] == "/openai/deployments/my-gpt4o-deployment/chat/completions"
    assert meta["query"] == {"api-version": "2024-06-01"}
    assert meta["headers"]["api-key"] == "azure-secret"
    assert "authorization" not in meta["headers"]


async def test_azure_errors_are_mapped_like_openai(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    entry = {
        "name": "gpt-4o",
        "provider": "azure-openai",
        "base_url": fake_upstream.base_url.removesuffix("/v1"),
        "upstream_model": "dep",
        "context_window": 128000,
        "retry": FAST_RETRY,
    }
    async with proxy(tmp_path, fake_upstream, [entry]) as p:
        fake_upstream.reply_error(429, "rate limited", headers={"Retry-After": "0.05"})
        fake_upstream.reply_text("after the pause")
        status, answer = await p.chat({"model": "gpt-4o", "messages": USER})
    assert status == 200 and answer["choices"][0]["message"]["content"] == "after the pause"
    assert fake_upstream.request_meta[0]["query"] == {"api-version": "2024-10-21"}


async def test_client_leaving_during_a_retry_pause_ends_the_request(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    async with proxy(tmp_path, fake_upstream, [model("m", fake_upstream.base_url)]) as p:
        fake_upstream.reply_error(503, "busy", headers={"Retry-After": "0.8"})
        fake_upstream.reply_text("would have been the retry")
        service = p.app.state.chat_completions  # type: ignore[attr-defined]
        body = orjson.dumps({"model": "m", "messages": USER})
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.2)) as session:
            with pytest.raises(TimeoutError):
                await session.post(f"{p.url}/v1/chat/completions", data=body, headers=p.headers)
        for _ in range(25):
            if not service.in_flight:
                break
            await asyncio.sleep(0.02)
        assert service.in_flight == 0
        await asyncio.sleep(0.8)
    assert len(fake_upstream.requests) == 1, "no retry is sent for a client that has gone"
