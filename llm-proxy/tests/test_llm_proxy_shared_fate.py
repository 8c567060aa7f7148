"""Shared fate: one client's requests must not take a model away from every other client.

A deployment's circuit breaker counts requests, not tries (a request retried three times is one failure), and
never counts a failure that the request itself caused (the upstream refused it: 400/404/413/422, context too long,
content filtered), so a few bad prompts from one session leave the model to everyone else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from codelab_common.testing import FakeOpenAI, ScriptedReply, free_port, serve_app
from codelab_llm_proxy.core.config import Settings
from codelab_llm_proxy.main import create_app
from tests.fixtures.llm_proxy import LLM_PROXY_TEST_KEY, RunningLLMProxy, write_models_file

USER = [{"role": "user", "content": "hello"}]
THRESHOLD = 3
"""The breaker's `min_calls`: with every call failing (ratio 1 ≥ 0.5), the third failed request opens it."""
BREAKER = {"window_s": 60, "min_calls": THRESHOLD, "error_ratio": 0.5, "cooldown_s": 30}
RETRIED = {"max_attempts": 3, "base_delay_s": 0.001, "max_delay_s": 0.005}


@asynccontextmanager
async def proxy(tmp_path: Path, upstream: FakeOpenAI, base_url: str | None = None) -> AsyncIterator[RunningLLMProxy]:
    entry = {
        "name": "m",
        "upstream_model": "fake-model",
        "base_url": base_url or upstream.base_url,
        "context_window": 4096,
        "connect_timeout_s": 2,
        "retry": RETRIED,
        "circuit_breaker": BREAKER,
    }
    models_file = write_models_file(tmp_path / "shared-fate-models.yaml", [entry])
    app = create_app(Settings(internal_api_key=LLM_PROXY_TEST_KEY, models_file=models_file))  # type: ignore[arg-type]
    async with serve_app(app) as url:
        yield RunningLLMProxy(url=url, api_key=LLM_PROXY_TEST_KEY, upstream=upstream, app=app)


async def breaker(p: RunningLLMProxy) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{p.url}/admin/deployments", headers=p.headers) as response,
    ):
        (row,) = (await response.json())["data"]
        return {key: row[key] for key in ("state", "calls", "failures")}


async def ask(p: RunningLLMProxy, stream: bool) -> int:
    return (await (p.stream if stream else p.chat)({"model": "m", "messages": USER}))[0]


@pytest.mark.parametrize("failure", ["5xx", "connect"])
async def test_a_retried_request_is_one_failure_and_threshold_requests_open_the_breaker(
    fake_upstream: FakeOpenAI, tmp_path: Path, failure: str
) -> None:
    fake_upstream.replies.append(ScriptedReply(status=500, error_message="upstream failure", repeat=True))
    base_url = f"http://127.0.0.1:{free_port()}/v1" if failure == "connect" else None
    async with proxy(tmp_path, fake_upstream, base_url) as p:
        for sent in range(1, THRESHOLD):
            assert await ask(p, stream=sent % 2 == 0) == 502
            assert await breaker(p) == {"state": "closed", "calls": sent, "failures": sent}
        if failure == "5xx":
            assert len(fake_upstream.requests) == (THRESHOLD - 1) * RETRIED["max_attempts"], "each one was retried"
        assert await ask(p, stream=False) == 502
        assert (await breaker(p))["state"] == "open"
        assert await ask(p, stream=False) == 503


async def test_fifty_requests_refused_with_400_leave_the_breaker_alone(
    fake_upstream: FakeOpenAI, tmp_path: Path
) -> None:
    fake_upstream.context_tokens = 10
    long_prompt = [{"role": "user", "content": "word " * 200}]
    async with proxy(tmp_path, fake_upstream) as p:
        for sent in range(50):
            status, _ = await (p.stream if sent % 2 else p.chat)({"model": "m", "messages": long_prompt})
            assert status == 400
        assert await breaker(p) == {"state": "closed", "calls": 0, "failures": 0}
        assert fake_upstream.refused_for_length == 50, "a refused request is tried once, never retried"
        assert await ask(p, stream=False) == 200


REQUEST_FAULTS = [
    pytest.param(404, {"message": "model 'x' not found", "type": "not_found_error"}, id="404"),
    pytest.param(413, {"message": "request entity too large", "type": "request_too_large"}, id="413"),
    pytest.param(422, {"message": "tools.0.function.parameters: invalid tool schema"}, id="422"),
    pytest.param(
        400,
        {"message": "The response was filtered due to the prompt triggering content management policy.",
         "type": "invalid_request_error", "code": "content_filter"},
        id="content-filter",
    ),
    pytest.param(
        500,
        {"message": "This model's maximum context length is 4096 tokens.", "code": "context_length_exceeded"},
        id="context-length-as-500",
    ),
    pytest.param(
        200,
        {"message": "This model's maximum context length is 4096 tokens.", "type": "invalid_request_error",
         "code": "context_length_exceeded"},
        id="context-length-in-band",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("status", "error"), REQUEST_FAULTS)
async def test_errors_the_request_caused_do_not_count(
    fake_upstream: FakeOpenAI, tmp_path: Path, status: int, error: dict[str, Any]
) -> None:
    body = orjson.dumps({"error": error})
    raw = b"data: " + body + b"\n\n" if status == 200 else body
    async with proxy(tmp_path, fake_upstream) as p:
        for sent in range(THRESHOLD * 2):
            fake_upstream.replay(raw, status=status)
            assert await ask(p, stream=status == 200 or sent % 2 == 1) in (400, 404, 413, 422)
        assert await breaker(p) == {"state": "closed", "calls": 0, "failures": 0}
        assert len(fake_upstream.requests) == THRESHOLD * 2, "never retried"


async def test_one_session_failing_does_not_hide_the_model_from_others(
    fake_upstream: FakeOpenAI, tmp_path: Path
) -> None:
    """The incident: three prompts too long for a server that answers them with a 500 (llama.cpp did), each retried,
    opened the breaker, and every other session got 503 for the cool-down."""
    too_long = "the request exceeds the available context size, try increasing it"

    def refuse_long_prompts(body: dict[str, Any]) -> ScriptedReply | None:
        long = len(body["messages"][-1]["content"]) > 500
        return ScriptedReply(status=500, error_message=too_long) if long else None

    fake_upstream.responder = refuse_long_prompts
    async with proxy(tmp_path, fake_upstream) as p:
        for _ in range(3):
            status, answer = await p.chat({"model": "m", "messages": [{"role": "user", "content": "x" * 1000}]})
            assert status == 400 and too_long in answer["error"]["message"]
        fake_upstream.reply_text("still here")
        status, answer = await p.chat({"model": "m", "messages": USER})
        assert status == 200 and answer["choices"][0]["message"]["content"] == "still here"
        assert await breaker(p) == {"state": "closed", "calls": 1, "failures": 0}
    assert len(fake_upstream.requests) == 4
