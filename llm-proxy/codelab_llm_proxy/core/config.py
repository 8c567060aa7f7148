"""llm-proxy settings (env prefix `LLM_PROXY__`)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from codelab_common.settings import ServiceSettings


class Settings(ServiceSettings):
    """Where the proxy listens and where its model table comes from.

    Without `models_file` the proxy serves one model, the embedded local llama.cpp server, so the whole system
    runs on one machine with no configuration beyond the internal key.
    """

    model_config = SettingsConfigDict(env_prefix="LLM_PROXY__", extra="ignore")

    port: int = 8002
    models_file: Path | None = None
    local_model: str = "qwen2.5-coder-0.5b"
    local_model_url: str = "http://127.0.0.1:8003/v1"
    local_model_context_window: int = 8192
