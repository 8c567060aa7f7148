"""The model list endpoints and the models table they come from (file, built-in default, bad files)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from codelab_common.testing import FakeOpenAI, free_port
from codelab_llm_proxy.core.config import Settings
from codelab_llm_proxy.core.model_registry import ModelConfigError, build_registry
from codelab_llm_proxy.main import create_app
from tests.fixtures.llm_proxy import RunningLLMProxy, serve_llm_proxy, write_models_file

EXAMPLE = Path(__file__).parents[1] / "models.example.yaml"


async def test_openai_list_shows_the_configured_models(llm_proxy: RunningLLMProxy) -> None:
    async with aiohttp.ClientSession(headers=llm_proxy.headers) as session:
        async with session.get(f"{llm_proxy.url}/v1/models") as response:
            assert response.status == 200
            listing = await response.json()
        assert listing["object"] == "list"
        card, json_card = listing["data"]
        assert card["id"] == "fake-model" and card["object"] == "model"
        assert json_card["id"] == "fake-json-model"
        assert card["context_length"] == 8192
        assert isinstance(card["created"], int) and card["owned_by"]
        async with session.get(f"{llm_proxy.url}/v1/models/fake-model") as response:
            assert response.status == 200 and (await response.json())["id"] == "fake-model"
        async with session.get(f"{llm_proxy.url}/v1/models/nope") as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "model_not_found"
        async with session.get(f"{llm_proxy.url}/v1/nowhere") as response:
            assert response.status == 404 and "error" in await response.json()


async def test_seed_list_says_which_models_can_take_a_request(
    fake_upstream: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CODELAB_TEST_UNSET_KEY", raising=False)
    models = [
        {"name": "here", "base_url": fake_upstream.base_url, "context_window": 4096},
        {"name": "no-key", "provider": "openai", "base_url": fake_upstream.base_url, "context_window": 128000,
         "api_key_env": "CODELAB_TEST_UNSET_KEY"},
    ]  # fmt: skip
    async with (
        serve_llm_proxy(models, fake_upstream, tmp_path) as proxy,
        aiohttp.ClientSession(headers=proxy.headers) as session,
        session.get(f"{proxy.url}/v1/llm/models") as response,
    ):
        assert response.status == 200
        listing = await response.json()
    assert listing == [
        {"id": "here", "name": "here", "provider": "openai-compatible", "context_length": 4096, "is_available": True},
        {"id": "no-key", "name": "no-key", "provider": "openai", "context_length": 128000, "is_available": False},
    ]


async def test_ready_only_while_some_model_server_answers(fake_upstream: FakeOpenAI, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    for models, status in (
        ([{"name": "down", "base_url": down, "context_window": 4096}], 503),
        ([{"name": "down", "base_url": down, "context_window": 4096},
          {"name": "up", "base_url": fake_upstream.base_url, "context_window": 4096}], 200),
    ):  # fmt: skip
        async with (
            serve_llm_proxy(models, fake_upstream, tmp_path) as proxy,
            aiohttp.ClientSession() as session,
            session.get(f"{proxy.url}/ready") as response,
        ):
            body = await response.json()
            assert response.status == status, body
        assert body["service"] == "llm-proxy"
        if status == 503:
            assert body["status"] == "not_ready" and "unreachable" in body["checks"]["models"]
        else:
            assert body == {"status": "ready", "service": "llm-proxy", "checks": {"models": "ok"}}


def settings(**values: object) -> Settings:
    return Settings(internal_api_key="k", **values)  # type: ignore[arg-type]


def test_default_table_is_the_embedded_local_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_PROXY__MODELS_FILE", raising=False)
    monkeypatch.setenv("LLM_PROXY__LOCAL_MODEL", "qwen2.5-coder-1.5b")
    monkeypatch.setenv("LLM_PROXY__LOCAL_MODEL_URL", "http://127.0.0.1:9999/v1/")
    (model,) = build_registry(settings())
    assert model.name == "qwen2.5-coder-1.5b" and model.upstream_name == "qwen2.5-coder-1.5b"
    assert model.base_url == "http://127.0.0.1:9999/v1"
    assert model.context_window == 8192 and model.tool_parser == "json"


def test_example_file_is_valid() -> None:
    names = [m.name for m in build_registry(settings(models_file=EXAMPLE))]
    assert names[0] == "qwen2.5-coder-0.5b" and "gpt-4o-mini" in names


def test_api_key_is_read_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    model = build_registry(settings(models_file=EXAMPLE)).get("gpt-4o-mini")
    assert model is not None and model.api_key() == "sk-test-123"
    assert "sk-test-123" not in repr(model)


@pytest.mark.parametrize(
    ("content", "mentions"),
    [
        ("models: [", "not valid YAML"),
        ("models: []", "invalid"),
        ("models:\n  - name: a\n    base_url: http://x/v1\n", "context_window"),
        ("models:\n  - name: a\n    base_url: http://x/v1\n    context_window: 10\n    colour: red\n", "colour"),
        (
            "models:\n  - {name: a, base_url: 'http://x', context_window: 1}\n"
            "  - {name: a, base_url: 'http://y', context_window: 1}\n",
            "twice",
        ),
    ],
)
def test_bad_models_file_fails_at_startup(tmp_path: Path, content: str, mentions: str) -> None:
    path = tmp_path / "models.yaml"
    path.write_text(content)
    with pytest.raises(ModelConfigError, match=mentions):
        create_app(settings(models_file=path))


def test_missing_file_and_unknown_provider_or_parser_fail_at_startup(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="cannot read"):
        create_app(settings(models_file=tmp_path / "absent.yaml"))
    entry = {"name": "a", "base_url": "http://x/v1", "context_window": 10}
    with pytest.raises(ValueError, match="unknown provider 'bedrock'"):
        create_app(settings(models_file=write_models_file(tmp_path / "p.yaml", [{**entry, "provider": "bedrock"}])))
    with pytest.raises(ValueError, match="unknown tool parser 'xml'"):
        create_app(settings(models_file=write_models_file(tmp_path / "t.yaml", [{**entry, "tool_parser": "xml"}])))
