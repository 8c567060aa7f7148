"""`POST /v1/llm/tokenize`: a prompt counted by the model's own server (llama.cpp's template and tokenizer), the
request prepared as the model gets it; models without a tokenizer say so."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from codelab_common.testing import FakeOpenAI
from tests.fixtures.llm_proxy import NO_RETRY, RunningLLMProxy


@pytest.fixture
def llm_proxy_models(fake_upstream: FakeOpenAI) -> list[dict[str, object]]:
    common = {"provider": "openai-compatible", "upstream_model": "fake-model", "base_url": fake_upstream.base_url}
    return [
        {"name": "plain", "context_window": 8192, "retry": NO_RETRY, **common},
        {"name": "local", "context_window": 8192, "retry": NO_RETRY, "tokenizer": "llama.cpp", "tool_parser": "json",
         **common},
    ]  # fmt: skip


async def tokenize(proxy: RunningLLMProxy, body: dict[str, Any] | str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(headers=proxy.headers) as session,
        session.post(
            f"{proxy.url}/v1/llm/tokenize", **({"data": body} if isinstance(body, str) else {"json": body})
        ) as got,
    ):
        return got.status, await got.json()


TOOLS = [{"type": "function", "function": {"name": "read_file", "description": "Read a file.", "parameters": {}}}]
MESSAGES = [{"role": "system", "content": "You help."}, {"role": "user", "content": "Read a.py " * 50}]


async def test_a_model_served_by_llama_cpp_is_counted_by_its_server(llm_proxy: RunningLLMProxy) -> None:
    plain_status, _ = await tokenize(llm_proxy, {"model": "local", "messages": MESSAGES})
    status, counted = await tokenize(llm_proxy, {"model": "local", "messages": MESSAGES, "tools": TOOLS})
    _, without_tools = await tokenize(llm_proxy, {"model": "local", "messages": MESSAGES})

    assert plain_status == status == 200 and counted["counted_by"] == "tokenizer"
    assert counted["prompt_tokens"] > without_tools["prompt_tokens"] > 500 // 4, "the tools are counted as presented"
    assert llm_proxy.upstream.tokenized == 3 and llm_proxy.upstream.requests == [], "counting generates nothing"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"model": "plain", "messages": MESSAGES}, 404, "no_tokenizer"),
        ({"model": "nope", "messages": MESSAGES}, 404, "model_not_found"),
        ({"model": "local", "messages": []}, 400, None),
        ("{not json", 400, None),
    ],
)
async def test_what_cannot_be_counted_says_why(
    llm_proxy: RunningLLMProxy, body: dict[str, Any] | str, status: int, code: str | None
) -> None:
    got, answer = await tokenize(llm_proxy, body)
    assert got == status and answer["error"]["code"]
    if code is not None:
        assert answer["error"]["code"] == code
