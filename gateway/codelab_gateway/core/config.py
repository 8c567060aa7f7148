"""gateway settings (env prefix `GATEWAY__`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from codelab_common.settings import Key, ServiceSettings


class Settings(ServiceSettings):
    """Where the gateway listens, where agent-runtime is, and the limits of a client session.

    Defaults run the whole system on one machine; only the two keys are required.
    """

    model_config = SettingsConfigDict(env_prefix="GATEWAY__", extra="ignore")

    port: int = 8000
    agent_runtime_url: str = "http://127.0.0.1:8001"
    agent_runtime_api_key: Key = Field(description="X-Internal-Auth the gateway sends to agent-runtime")
    max_frame_bytes: int = Field(default=1 << 20, gt=0, description="Largest inbound WebSocket frame accepted")
    max_sessions: int = Field(
        default=2_000,
        ge=1,
        description="Sessions whose last delivered seq the gateway remembers for clients that reconnect without "
        "`last_seq`; beyond it the least recently used is forgotten (its client then resumes at the running turn)",
    )
    agent_connect_timeout_s: float = 5.0
    agent_read_timeout_s: float = Field(
        default=600.0, gt=0, description="Longest silence tolerated inside an agent-runtime stream"
    )
    agent_max_connections: int = Field(
        default=0, ge=0, description="Open connections to agent-runtime (one per client being followed; 0: no limit)"
    )
    agent_max_event_bytes: int = Field(default=8 << 20, description="Largest SSE line read from agent-runtime")
