"""Golden files: every (ingress × upstream × stream × scenario) cell against the real proxy on loopback.

Each cell sends the client request in `golden/requests/<ingress>/<scenario>.json` (plus `model` and `stream`) to
`/v1/chat/completions` (OpenAI ingress) or `/v1/messages` (Anthropic ingress); the fake upstream of the routed
model replays `golden/upstream/<provider>/<scenario>.sse` (stream) or `.json` (non-stream) byte for byte, and the
proxy's answer must equal `golden/expected/<ingress>-ingress/<upstream>-upstream/<scenario>.sse|.json`.
Streams are compared as exact text; whole answers as `{"status", "body"}` JSON (so key order does not matter).

Normalisation (the one rule): every `"created":<digits>` in the proxy's output becomes `"created":0` before
comparing (the Anthropic provider stamps the translation time; no other field is volatile, since every id comes
from the recording). The expected files were reasoned out by hand and checked; `golden/regenerate.py` can rewrite
them from the current code for review, and is never run by the tests.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from codelab_common.testing import FakeAnthropic, FakeOpenAI, serve_app
from tests.fixtures.llm_proxy import RunningLLMProxy, serve_llm_proxy

GOLDEN = Path(__file__).parent / "golden"
INGRESSES = ("openai", "anthropic")
UPSTREAMS = ("openai", "anthropic")
SCENARIOS = (
    "text",
    "tool",
    "parallel_tools",
    "empty_args",
    "max_tokens_tool",
    "thinking",
    "usage",
    "error",
)
MODELS = {"openai": "gpt-golden", "anthropic": "claude-golden"}
ERROR_STATUS = {"openai": 500, "anthropic": 529}
"""HTTP status of each upstream's recorded non-stream `error` answer (the recordings are bodies only)."""
ANTHROPIC_KEY_ENV = "GOLDEN_ANTHROPIC_API_KEY"
_CREATED = re.compile(rb'"created":\d+')


@dataclass(frozen=True)
class Cell:
    ingress: str
    upstream: str
    scenario: str
    stream: bool

    @property
    def id(self) -> str:
        return f"{self.ingress}-in/{self.upstream}-up/{self.scenario}/{'stream' if self.stream else 'json'}"

    @property
    def expected_path(self) -> Path:
        suffix = "sse" if self.stream else "json"
        return (
            GOLDEN / "expected" / f"{self.ingress}-ingress" / f"{self.upstream}-upstream" / f"{self.scenario}.{suffix}"
        )

    def recording(self) -> tuple[bytes, int]:
        path = GOLDEN / "upstream" / self.upstream / f"{self.scenario}.{'sse' if self.stream else 'json'}"
        status = ERROR_STATUS[self.upstream] if self.scenario == "error" and not self.stream else 200
        return path.read_bytes(), status

    def request(self) -> dict[str, Any]:
        body: dict[str, Any] = orjson.loads((GOLDEN / "requests" / self.ingress / f"{self.scenario}.json").read_bytes())
        if not self.stream:
            body.pop("stream_options", None)
        return {"model": MODELS[self.upstream], **body, "stream": self.stream}


CELLS = [
    Cell(ingress, upstream, scenario, stream)
    for ingress in INGRESSES
    for upstream in UPSTREAMS
    for scenario in SCENARIOS
    for stream in (False, True)
]


def golden_models(openai_url: str, anthropic_url: str) -> list[dict[str, object]]:
    no_retry = {"max_attempts": 1}
    never_open = {"min_calls": 100000}
    return [
        {
            "name": "gpt-golden",
            "provider": "openai-compatible",
            "upstream_model": "gpt-upstream",
            "base_url": openai_url,
            "context_window": 8192,
            "retry": no_retry,
            "circuit_breaker": never_open,
        },
        {
            "name": "claude-golden",
            "provider": "anthropic",
            "upstream_model": "claude-upstream",
            "base_url": anthropic_url,
            "api_key_env": ANTHROPIC_KEY_ENV,
            "context_window": 200000,
            "retry": no_retry,
            "circuit_breaker": never_open,
        },
    ]


def normalise(raw: bytes) -> bytes:
    return _CREATED.sub(b'"created":0', raw)


async def run_cell(cell: Cell, proxy: RunningLLMProxy, openai: FakeOpenAI, anthropic: FakeAnthropic) -> bytes:
    """Replay the cell's recording upstream, send its request, and return the proxy's normalised answer as it
    would be stored: SSE text for a stream, `{"status", "body"}` JSON for a whole answer."""
    raw, status = cell.recording()
    openai.replies.clear()
    anthropic.replies.clear()
    (openai if cell.upstream == "openai" else anthropic).replay(raw, status=status, repeat=True)
    if cell.ingress == "openai":
        path, headers = "/v1/chat/completions", proxy.headers
    else:
        path, headers = "/v1/messages", {"x-api-key": proxy.api_key, "anthropic-version": "2023-06-01"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{proxy.url}{path}", data=orjson.dumps(cell.request()), headers=headers) as response,
    ):
        body = normalise(await response.read())
        if cell.stream:
            assert response.status == 200, body
            assert response.content_type == "text/event-stream"
            return body
        answer = {"status": response.status, "body": orjson.loads(body)}
        return orjson.dumps(answer, option=orjson.OPT_INDENT_2) + b"\n"


@dataclass
class GoldenRig:
    proxy: RunningLLMProxy
    openai: FakeOpenAI
    anthropic: FakeAnthropic


@asynccontextmanager
async def golden_rig(tmp_path: Path) -> AsyncIterator[GoldenRig]:
    """Both fake upstreams and one proxy routing `gpt-golden` and `claude-golden` to them."""
    openai, anthropic = FakeOpenAI(), FakeAnthropic()
    with pytest.MonkeyPatch.context() as env:
        env.setenv(ANTHROPIC_KEY_ENV, "sk-ant-golden")
        async with serve_app(openai.app) as openai_url, serve_app(anthropic.app) as anthropic_url:
            openai.base_url, anthropic.base_url = f"{openai_url}/v1", anthropic_url
            models = golden_models(openai.base_url, anthropic.base_url)
            async with serve_llm_proxy(models, openai, tmp_path) as proxy:
                yield GoldenRig(proxy, openai, anthropic)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GoldenRig]:
    """One rig for all cells (starting three servers per cell would cost most of the module's time)."""
    async with golden_rig(tmp_path_factory.mktemp("golden")) as rig:
        yield rig


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("cell", CELLS, ids=[c.id for c in CELLS])
async def test_golden_cell(cell: Cell, rig: GoldenRig) -> None:
    fake_anthropic = rig.anthropic
    actual = await run_cell(cell, rig.proxy, rig.openai, rig.anthropic)
    expected = cell.expected_path.read_bytes()
    if cell.stream:
        assert actual.decode() == expected.decode()
    else:
        assert orjson.loads(actual) == orjson.loads(expected)
    if cell.upstream == "anthropic":
        sent = fake_anthropic.headers[-1]
        assert sent["x-api-key"] == "sk-ant-golden" and sent["anthropic-version"] == "2023-06-01"


def test_matrix_is_complete() -> None:
    """64 cells, each with its frozen expected output; no stray expected file."""
    assert len(CELLS) == 64
    expected = {c.expected_path for c in CELLS}
    assert all(path.is_file() for path in expected)
    assert set((GOLDEN / "expected").rglob("*.*")) == expected
