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
    tool_timeout_s: float = Field(default=120.0, gt=0, description="How long a client may take to answer a tool_call")
    max_frame_bytes: int = Field(default=1 << 20, gt=0, description="Largest inbound WebSocket frame accepted")
    outbound_buffer_frames: int = Field(
        default=1000, ge=10, description="Outbound frames a session keeps for a client that reconnects"
    )
    max_sessions: int = Field(
        default=2_000,
        ge=1,
        description="Sessions held in memory; beyond it the longest idle one (no client, no turn) is let go",
    )
    session_idle_ttl_s: float = Field(
        default=900.0, gt=0, description="How long a session with no client and no turn is kept in memory"
    )
    agent_connect_timeout_s: float = 5.0
    agent_read_timeout_s: float = Field(
        default=600.0, gt=0, description="Longest silence tolerated inside an agent-runtime stream"
    )
    agent_max_connections: int = 512
    agent_max_event_bytes: int = Field(default=8 << 20, description="Largest SSE line read from agent-runtime")
