"""gateway settings (env prefix `GATEWAY__`)."""

from __future__ import annotations

import hashlib
import ipaddress
from enum import StrEnum
from typing import Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from codelab_common.settings import Key, ServiceSettings


class ClientAuth(StrEnum):
    NONE = "none"
    TOKEN = "token"
    JWT = "jwt"


class Settings(ServiceSettings):
    """Where the gateway listens, where agent-runtime is, who may connect and what a client may cost.

    Defaults run the whole system on one machine; only the two keys are required.
    """

    model_config = SettingsConfigDict(env_prefix="GATEWAY__", extra="ignore")

    port: int = 8000
    agent_runtime_url: str = "http://127.0.0.1:8001"
    agent_runtime_api_key: Key = Field(description="X-Internal-Auth the gateway sends to agent-runtime")

    client_auth: ClientAuth = Field(
        default=ClientAuth.NONE,
        description="How WebSocket clients authenticate: `none` (loopback only: refused with a non-loopback "
        "GATEWAY__HOST), `token` (GATEWAY__CLIENT_TOKENS) or `jwt` (GATEWAY__JWT_SECRET or GATEWAY__JWT_JWKS_URL)",
    )
    client_tokens: SecretStr | None = Field(
        default=None,
        description="Static client tokens, comma-separated, each `name:token` (the name is the principal that owns "
        "the sessions it creates) or a bare token (its principal is a digest of it)",
    )
    jwt_secret: SecretStr | None = Field(default=None, description="HS256 secret that signs client JWTs")
    jwt_jwks_url: str | None = Field(default=None, description="JWKS URL whose keys sign client JWTs (RS256)")
    jwt_audience: str | None = Field(default=None, description="Required `aud` of client JWTs (unset: not checked)")
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of client JWTs (unset: not checked)")
    jwt_principal_claim: str = Field(default="sub", description="The JWT claim that names the principal")

    max_frame_bytes: int = Field(
        default=256 << 10, gt=0, description="Largest inbound WebSocket frame other than a tool_result"
    )
    max_tool_result_bytes: int = Field(
        default=1 << 20, gt=0, description="Largest inbound tool_result frame (the transport closes beyond it: 1009)"
    )
    frames_per_second: float = Field(
        default=20.0, gt=0, description="Inbound frames a connection may send per second on average"
    )
    frame_burst: int = Field(default=60, ge=1, description="Inbound frames a connection may send at once")
    max_refused_frames: int = Field(
        default=200,
        ge=1,
        description="Frames dropped for exceeding the rate within 10 s before the connection is closed (1008)",
    )
    max_connections_per_principal: int = Field(
        default=64, ge=1, description="Open WebSocket connections (so sessions) one principal may hold here"
    )
    max_handshake_bytes: int = Field(
        default=16 << 10, gt=0, description="Largest WebSocket handshake (request line, headers and URL)"
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description='Origins a WebSocket handshake may carry, a JSON list (`["https://ide.example.com"]`); a handshake '
        "without an Origin header (desktop clients) is always allowed",
    )
    ping_interval_s: float = Field(default=20.0, gt=0, description="Seconds between pings to a client")
    ping_timeout_s: float = Field(default=20.0, gt=0, description="Seconds a client has to answer a ping")
    send_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Longest a frame may wait for a client that does not read before it is "
        "disconnected (1008); it resumes from its last seq",
    )
    compression: bool = Field(
        default=False,
        description="Offer permessage-deflate to WebSocket clients: it costs about 46 KB of zlib state per "
        "connection (most of an idle connection's memory) to shrink frames that are mostly short text deltas",
    )
    idle_timeout_s: float = Field(
        default=3600.0, ge=0, description="A connection that sends nothing this long is closed (1001; 0: never)"
    )

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
    follow_idle_s: float = Field(
        default=1.0,
        ge=0,
        le=86400,
        description="A connection whose session has been idle this long (no turn running, no call waiting) stops "
        "following it and holds no stream to agent-runtime until its client's next input is accepted",
    )

    @model_validator(mode="after")
    def _auth_is_complete(self) -> Self:
        if self.client_auth is ClientAuth.NONE and not is_loopback(self.host):
            raise ValueError(
                f"client_auth: 'none' lets anyone who reaches {self.host}:{self.port} use any session; it is "
                "allowed only on a loopback GATEWAY__HOST. Set GATEWAY__CLIENT_AUTH=token or jwt"
            )
        if self.client_auth is ClientAuth.TOKEN and not self.client_token_pairs():
            raise ValueError("client_tokens: GATEWAY__CLIENT_AUTH=token needs at least one token")
        if self.client_auth is ClientAuth.JWT and not (self.jwt_secret or self.jwt_jwks_url):
            raise ValueError("client_auth: 'jwt' needs GATEWAY__JWT_SECRET (HS256) or GATEWAY__JWT_JWKS_URL (RS256)")
        return self

    def client_token_pairs(self) -> list[tuple[str, str]]:
        """(principal, token) for each configured static token."""
        raw = self.client_tokens.get_secret_value() if self.client_tokens else ""
        pairs = []
        for item in filter(None, (part.strip() for part in raw.split(","))):
            name, _, token = item.rpartition(":")
            token = token.strip()
            if token:
                pairs.append((name.strip() or static_token_principal(token), token))
        return pairs


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def static_token_principal(token: str) -> str:
    """The principal of a static token given without a name: a digest, so logs never show the token."""
    return "token-" + hashlib.sha256(token.encode()).hexdigest()[:12]
