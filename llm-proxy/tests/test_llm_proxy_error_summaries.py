"""Errors to clients are written by the proxy: an upstream's error body is never passed on as it is.

The fake upstreams here echo what a leaky server echoes (the key they were sent, their own URL, other keys) into
their error messages; through either endpoint, streamed or not, before or after the stream started, the client gets
the proxy's summary: which model and deployment failed, the HTTP status and error type, and at most 300 characters
of the upstream's message with every secret and internal address removed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest

from codelab_common.sse import iter_sse
from codelab_common.testing import FakeAnthropic, FakeOpenAI, ScriptedReply, free_port
from codelab_llm_proxy.core.redaction import MAX_UPSTREAM_MESSAGE_CHARS, Redactor
from tests.fixtures.llm_proxy import LLM_PROXY_TEST_KEY, RunningLLMProxy, serve_llm_proxy

GPT_KEY = "sk-echo-upstream-key-4f1c2a9b7e"
CLAUDE_KEY = "ant-api03-claude-key-77aa01"
OTHER_KEY = "other-deployment-key-9911"
"""Not shaped like a key at all: only known because it is configured."""
KEYS = {
    "LLM_PROXY_TEST_GPT_KEY": GPT_KEY,
    "LLM_PROXY_TEST_CLAUDE_KEY": CLAUDE_KEY,
    "LLM_PROXY_TEST_OTHER_KEY": OTHER_KEY,
}
DOWN_PORT = free_port()
USER = [{"role": "user", "content": "hello"}]
PADDING = " and then the server went on about its internals" * 30


@pytest.fixture
def llm_proxy_models(
    fake_upstream: FakeOpenAI, fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> list[dict[str, object]]:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    once = {"context_window": 8192, "retry": {"max_attempts": 1}}
    return [
        {
            "name": "gpt",
            "base_url": fake_upstream.base_url,
            "api_key_env": "LLM_PROXY_TEST_GPT_KEY",
            "deployments": [{"id": "gpt-eu-1"}],
            **once,
        },
        {
            "name": "claude",
            "provider": "anthropic",
            "base_url": fake_anthropic.base_url,
            "api_key_env": "LLM_PROXY_TEST_CLAUDE_KEY",
            "deployments": [{"id": "claude-us-2"}],
            **once,
        },
        {"name": "other", "base_url": "http://10.20.30.40:8000/v1", "api_key_env": "LLM_PROXY_TEST_OTHER_KEY", **once},
        {
            "name": "down",
            "base_url": f"http://127.0.0.1:{DOWN_PORT}/v1",
            "deployments": [{"id": "down-eu"}],
            "connect_timeout_s": 2,
            **once,
        },
    ]


def leak(sent_key: str, url: str) -> str:
    """What a leaky upstream says: the key it got, its URL, another deployment's key and host, the proxy's key."""
    return (
        f"invalid credentials Bearer {sent_key} for {url} (tried {OTHER_KEY} on 10.20.30.40:8000, "
        f"caller key {LLM_PROXY_TEST_KEY}){PADDING}"
    )


def forbidden(upstream_url: str) -> list[str]:
    host = urlsplit(upstream_url)
    return [
        GPT_KEY,
        CLAUDE_KEY,
        OTHER_KEY,
        LLM_PROXY_TEST_KEY,
        upstream_url,
        f"{host.hostname}:{host.port}",
        "10.20.30.40",
    ]


def echo_openai(upstream: FakeOpenAI) -> None:
    def echo(_: dict[str, Any]) -> ScriptedReply:
        authorization = upstream.request_meta[-1]["headers"]["authorization"].removeprefix("Bearer ")
        return ScriptedReply(status=500, error_message=leak(authorization, f"{upstream.base_url}/chat/completions"))

    upstream.responder = echo


def text_chunk() -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "fake-model"}
    chunk["choices"] = [{"index": 0, "delta": {"role": "assistant", "content": "Partial"}, "finish_reason": None}]
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


def anthropic_prefix() -> bytes:
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "fake-claude", "content": []}
    message |= {"stop_reason": None, "usage": {"input_tokens": 1, "output_tokens": 1}}
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": message},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Partial"}},
    ]
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


async def ask(proxy: RunningLLMProxy, endpoint: str, model: str, stream: bool) -> tuple[int, str, bytes]:
    """The status, the error message the client got (in the body or in-band) and the whole raw answer."""
    body: dict[str, Any] = {"model": model, "messages": USER, "stream": stream}
    path = "/v1/chat/completions"
    if endpoint == "messages":
        body["max_tokens"] = 50
        path = "/v1/messages"
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{proxy.url}{path}", data=orjson.dumps(body), headers=proxy.headers) as response,
    ):
        if response.status != 200:
            raw = await response.read()
            return response.status, orjson.loads(raw)["error"]["message"], raw
        events = [event async for event in iter_sse(response.content)]
    raw = b"".join(f"event: {e.event}\ndata: {e.data}\n\n".encode() for e in events)
    errors = [orjson.loads(e.data)["error"] for e in events if e.data.startswith(('{"error"', '{"type":"error"'))]
    assert len(errors) == 1, raw
    return 200, errors[0]["message"], raw


CELLS = [
    pytest.param(
        upstream, endpoint, stream, when, id=f"{upstream}-up/{endpoint}/{'stream' if stream else 'json'}/{when}"
    )
    for upstream in ("openai", "anthropic")
    for endpoint in ("chat", "messages")
    for stream, when in ((False, "status"), (True, "status"), (True, "in-band"))
]


@pytest.mark.parametrize(("upstream", "endpoint", "stream", "when"), CELLS)
async def test_an_echoing_upstream_leaks_neither_keys_nor_addresses(
    llm_proxy: RunningLLMProxy,
    fake_upstream: FakeOpenAI,
    fake_anthropic: FakeAnthropic,
    upstream: str,
    endpoint: str,
    stream: bool,
    when: str,
) -> None:
    if upstream == "openai":
        model, deployment, url = "gpt", "gpt-eu-1", f"{fake_upstream.base_url}/chat/completions"
        if when == "status":
            echo_openai(fake_upstream)
        else:
            fake_upstream.replay(text_chunk() + b"data: " + orjson.dumps({"error": {"message": leak(GPT_KEY, url)}}))
    else:
        model, deployment, url = "claude", "claude-us-2", f"{fake_anthropic.base_url}/v1/messages"
        error = {"type": "error", "error": {"type": "api_error", "message": leak(CLAUDE_KEY, url)}}
        if when == "status":
            fake_anthropic.replay(orjson.dumps(error), status=500)
        else:
            fake_anthropic.replay(anthropic_prefix() + b"event: error\ndata: " + orjson.dumps(error) + b"\n\n")

    status, message, raw = await ask(llm_proxy, endpoint, model, stream)

    assert status == (200 if when == "in-band" else 502)
    if upstream == "anthropic":
        assert fake_anthropic.headers[-1]["x-api-key"] == CLAUDE_KEY, "the key the upstream echoed is the real one"
    for secret in forbidden(url):
        assert secret not in raw.decode(), secret
    assert f"{model!r} (deployment {deployment!r})" in message
    assert ("HTTP 500" if when == "status" else "mid-stream") in message
    assert "invalid credentials Bearer [redacted] for [url] (tried [redacted] on [host]" in message
    assert message.endswith("…") and len(message[message.index("invalid") :]) == MAX_UPSTREAM_MESSAGE_CHARS


@pytest.mark.parametrize("endpoint", ["chat", "messages"])
@pytest.mark.parametrize("stream", [False, True])
async def test_an_unreachable_upstream_is_named_by_its_deployment_not_its_address(
    llm_proxy: RunningLLMProxy, endpoint: str, stream: bool
) -> None:
    status, message, raw = await ask(llm_proxy, endpoint, "down", stream)
    assert status == 502
    assert message == "cannot reach the model server for 'down' (deployment 'down-eu'): Connection refused"
    assert b"127.0.0.1" not in raw and str(DOWN_PORT).encode() not in raw and b"http" not in raw


async def test_an_html_error_page_is_summarised_as_text(llm_proxy: RunningLLMProxy, fake_upstream: FakeOpenAI) -> None:
    page = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1>"
    page += b"<p>upstream http://vllm-7.internal:8000/v1 is down</p><hr><center>nginx</center></body></html>"
    fake_upstream.replay(page, status=502)
    status, message, _ = await ask(llm_proxy, "chat", "gpt", stream=False)
    assert status == 502
    expected = "model server for 'gpt' (deployment 'gpt-eu-1') failed with HTTP 502: 502 Bad Gateway 502 Bad Gateway"
    assert message == f"{expected} upstream [url] is down nginx"


async def test_readiness_names_no_upstream_address(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    port = free_port()
    models = [{"name": "down", "base_url": f"http://127.0.0.1:{port}/v1", "context_window": 8192}]
    async with (
        serve_llm_proxy(models, fake_upstream, tmp_path) as proxy,
        aiohttp.ClientSession() as session,
        session.get(f"{proxy.url}/ready") as response,
    ):
        body = await response.json()
    assert response.status == 503
    assert body["checks"]["models"] == "down: model server unreachable"


def test_redactor_removes_configured_secrets_credentials_urls_and_hosts() -> None:
    keys = ["short", "abc", None, "key-of-deployment-b", "key-of-deployment-b-longer"]
    redactor = Redactor(lambda: keys, hosts=["llm.internal", "10.1.2.3", ""])
    text = (
        "key-of-deployment-b-longer; key-of-deployment-b; abc; short\n"
        "Authorization: Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl, sk-ant-api03-XYZ123, api_key=hunter22, "
        '"x-api-key": "k9", password: pw!\n'
        "see https://llm.internal:8443/v1/chat?key=1, redis://user:pw@cache:6379/0, llm.internal:8000, "
        "LLM.internal, 10.1.2.3 and not-llm.internal-host, 110.1.2.34"
    )
    assert redactor.clean(text) == (
        "[redacted]; [redacted]; abc; [redacted]\n"
        "Authorization: Bearer [redacted], [redacted], api_key=[redacted], "
        '"x-api-key": "[redacted]", password: [redacted]\n'
        "see [url], [url], [host], [host], [host] and not-llm.internal-host, 110.1.2.34"
    )


def test_summaries_are_cut_after_cleaning_and_kinds_must_be_plain() -> None:
    redactor = Redactor(lambda: ["s3cr3t-value-that-is-long"])
    text = "x" * (MAX_UPSTREAM_MESSAGE_CHARS - 5) + "s3cr3t-value-that-is-long tail"
    summary = redactor.summary(text)
    assert len(summary) == MAX_UPSTREAM_MESSAGE_CHARS and "s3cr3t" not in summary and summary.endswith("…")
    assert redactor.summary("  two\n\n lines\t") == "two lines"
    assert redactor.kind("context_length_exceeded") == "context_length_exceeded"
    assert redactor.kind("sk-abcdef123456") == redactor.kind("has spaces") == redactor.kind("x" * 65) == ""
