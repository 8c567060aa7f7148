"""Settings shared by every service; each service subclasses with its own `SERVICE__` prefix."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Base of every service's settings. Subclasses set `env_prefix` (e.g. `GATEWAY__`)."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")

    internal_api_key: SecretStr = Field(
        description="Key every caller of this service's internal endpoints sends in X-Internal-Auth",
    )
    host: str = "127.0.0.1"
    port: int
    log_level: str = "INFO"
    log_json: bool = True
    metrics_open: bool = Field(
        default=False,
        description="Serve GET /metrics without X-Internal-Auth (for a Prometheus that scrapes without headers)",
    )
