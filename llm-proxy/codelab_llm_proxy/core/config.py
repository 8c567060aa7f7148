"""llm-proxy settings (env prefix `LLM_PROXY__`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from codelab_common.settings import ServiceSettings
from codelab_common.sse import DEFAULT_KEEP_ALIVE_S

LOCAL_MAX_OUTPUT_TOKENS = 512
"""The embedded local model's step: its useful answers are a short reply or one tool call (a new file of a few dozen
lines); a model that starts repeating itself is cut after ~50 s (1.5B on 2 cores) instead of holding its slot until
the context is full. Measured on bench/agent_eval: 1024 let runaway steps take 100 s and more."""


class Settings(ServiceSettings):
    """Where the proxy listens and where its model table comes from.

    Without `models_file` the proxy serves one model, the embedded local llama.cpp server, so the whole system
    runs on one machine with no configuration beyond the internal key.
    """

    model_config = SettingsConfigDict(env_prefix="LLM_PROXY__", extra="ignore")

    port: int = 8002
    models_file: Path | None = None
    local_model: str = "qwen2.5-coder-1.5b"
    local_model_url: str = "http://127.0.0.1:8003/v1"
    local_model_context_window: int = 8192
    local_model_max_output_tokens: int = Field(default=LOCAL_MAX_OUTPUT_TOKENS, gt=0)
    """The embedded model's `max_tokens` when a request sets none (a models file sets `max_output_tokens`)."""
    sse_keep_alive_s: float | None = Field(default=DEFAULT_KEEP_ALIVE_S, gt=0)
    """A stream silent this long gets a `: keep-alive` comment; a stream whose first chunk takes this long is
    started (200 and a comment) without it, so a failure after that is an in-band error. Null: neither."""
    max_body_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    """Larger request bodies are refused with 413 before they are parsed."""
    # Rate limits (services/rate_limit): off unless a limit is set here or on a model (`rpm` / `tpm`).
    rate_limit_rpm: int | None = Field(default=None, gt=0)
    """Requests per window per caller (caller key, else client IP)."""
    rate_limit_tpm: int | None = Field(default=None, gt=0)
    """Tokens (prompt + completion) per window per caller."""
    rate_limit_window_s: float = Field(default=60.0, gt=0)
    rate_limit_default_max_tokens: int = Field(default=1024, gt=0)
    """Completion tokens reserved for a request that sets no `max_tokens` / `max_completion_tokens`."""
    caller_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Extra accepted keys (JSON list or comma-separated), each its own rate-limit identity."""
    redis_url: str | None = None
    """Keep the rate-limit counters in Redis (shared by every proxy process using it); unset: in memory."""
    redis_key_prefix: str = "codelab:llm-proxy:ratelimit"

    @field_validator("caller_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            return json.loads(text) if text.startswith("[") else [k.strip() for k in text.split(",") if k.strip()]
        return value
