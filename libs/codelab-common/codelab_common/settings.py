"""Settings shared by every service; each service subclasses with its own `SERVICE__` prefix.

Values come from the environment and from a `.env` file in the working folder; the environment wins. An empty
value counts as unset (`NAME=` in a copied `.env.example` means the default).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _not_blank(key: SecretStr) -> SecretStr:
    if not key.get_secret_value().strip():
        raise ValueError("must not be empty")
    return key


Key = Annotated[SecretStr, AfterValidator(_not_blank)]
"""A key sent in or checked against `X-Internal-Auth`: required and never empty, so a service without one stops at
start with the setting's name instead of answering 500 later."""


DEFAULT_MAX_BODY_BYTES = 4 << 20
"""agent-runtime's inputs are the largest bodies between the services: a tool result the gateway forwards from one
WebSocket frame (`GATEWAY__MAX_TOOL_RESULT_BYTES`, 1 MiB) in a small JSON envelope; 4 MiB leaves room for that limit
raised to a few MiB. The gateway's own HTTP endpoints take no body at all."""


class ServiceSettings(BaseSettings):
    """Base of every service's settings. Subclasses set `env_prefix` (e.g. `GATEWAY__`)."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        extra="ignore",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        use_attribute_docstrings=True,
    )

    internal_api_key: Key = Field(
        description="Key every caller of this service's internal endpoints sends in X-Internal-Auth",
    )
    host: str = "127.0.0.1"
    """Address to listen on (0.0.0.0: every interface)."""
    port: int
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    log_json: bool = True
    """One JSON object per log line (false: readable lines for a terminal)."""
    metrics_open: bool = False
    """Serve GET /metrics without X-Internal-Auth (for a Prometheus that scrapes without headers)."""
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, gt=0)
    """Larger request bodies are refused with 413 (TOO_LARGE) before they are parsed, chunked ones included."""

    def secret_values(self) -> tuple[str, ...]:
        """Every secret setting's value, for log redaction."""
        return tuple(
            value.get_secret_value()
            for value in (getattr(self, name) for name in type(self).model_fields)
            if isinstance(value, SecretStr)
        )
