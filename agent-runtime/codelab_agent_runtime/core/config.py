"""agent-runtime settings (env prefix `AGENT_RUNTIME__`)."""

from __future__ import annotations

import os

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from codelab_common.protocol import ApprovalRule
from codelab_common.protocol.approvals import DEFAULT_POLICY
from codelab_common.settings import Key, ServiceSettings
from codelab_common.sse import DEFAULT_KEEP_ALIVE_S

ENV_PREFIX = "AGENT_RUNTIME__"


class Settings(ServiceSettings):
    """Where the service listens, which llm-proxy model it drives, and the limits of one agent turn.

    The defaults run on one machine next to llm-proxy and the embedded local model.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    port: int = 8001
    llm_proxy_url: str = "http://127.0.0.1:8002"
    llm_proxy_api_key: Key = Field(description="llm-proxy's internal key, sent as X-Internal-Auth")
    model: str = "qwen2.5-coder-1.5b"
    temperature: float | None = Field(default=0.2, description="Sampling temperature (null: the model's default)")
    max_tokens: int | None = Field(
        default=None,
        description="Cap on one model reply, sent when set; unset, llm-proxy applies the model's own default "
        "(its max_output_tokens: 1024 for the embedded model)",
    )
    database_url: str = "sqlite+aiosqlite:///./data/agent-runtime.db"

    max_steps: int = Field(default=12, ge=1, description="Model calls one user turn may make")
    approval_policy: list[ApprovalRule] = Field(
        default_factory=lambda: list(DEFAULT_POLICY),
        description="Which tool calls run, ask the user first, or never run: rules "
        '`{"tool", "path"?, "command"?, "action": "allow" | "ask" | "deny"}` (a deny wins, then the most specific '
        "rule; no match asks; see docs/approvals.md). The default lets reads, searches and git_diff run and asks "
        "before writes, patches, new folders and commands",
    )

    @model_validator(mode="after")
    def _no_replaced_settings(self) -> Settings:
        """A deployment that still sets the list this policy replaced would run with a looser policy than it wrote."""
        if os.environ.get(f"{ENV_PREFIX}APPROVAL_REQUIRED") is not None:
            raise ValueError(
                f"{ENV_PREFIX}APPROVAL_REQUIRED was replaced by {ENV_PREFIX}APPROVAL_POLICY: write its tools as "
                '[{"tool": "<name>", "action": "ask"}, ...] (docs/approvals.md) and unset it'
            )
        return self

    approval_timeout_s: float = Field(
        default=1800.0,
        gt=0,
        description="How long a tool call waits for the user's approval before the model is told it timed out",
    )
    model_tools: list[str] | None = Field(
        default=None,
        description="Only these tools (model or wire names) are offered to the model, of those the client "
        "executes (null: all of them); `codelab up` leaves out create_directory, git_diff, apply_patch and "
        "prompt_user for the embedded models, which otherwise pick them for the wrong jobs",
    )
    tool_timeout_s: float = Field(
        default=120.0,
        gt=0,
        description="How long a client may take to answer a tool_call before the model is told it timed out",
    )
    busy_wait_s: float = Field(
        default=5.0,
        ge=0,
        description="How long a tool result or a cancel waits for a session that another input holds for a moment",
    )
    lease_ttl_s: float = Field(
        default=10.0,
        gt=0,
        description="A step holds its session's lease this long between renewals (every third of it, at most every "
        "second); a session whose holder died is taken over and its turn closed with AGENT_DOWN once its lease has "
        "stayed expired for half this again on the taker's own clock",
    )
    redis_url: str | None = Field(
        default=None,
        description="Publish every session's events on Redis so a follower on any instance gets them at once "
        "(needed when several agent-runtimes share one database)",
    )
    redis_channel_prefix: str = "codelab:"
    follow_poll_s: float = Field(
        default=15.0,
        gt=0,
        description="A follower with nothing new reads the database this often anyway (a missed Redis message)",
    )
    workspace_context: bool = Field(
        default=True,
        description="At the start of a turn, ask the client for the project's file list and the files the message "
        "names, and show them to the model",
    )
    tool_result_max_chars: int = Field(default=12_000, ge=200, description="Longer tool output is truncated")
    default_context_window: int = Field(
        default=8192,
        ge=1024,
        description="Context window (tokens) of a model llm-proxy lists without one; the history sent is fitted to "
        "the model's window (docs/context-window.md)",
    )
    llm_connect_timeout_s: float = 10.0
    llm_read_timeout_s: float = Field(default=300.0, description="Longest silence between two streamed chunks")
    sse_keep_alive_s: float | None = Field(
        default=DEFAULT_KEEP_ALIVE_S,
        gt=0,
        description="A step's stream silent this long (the model is thinking, or llm-proxy holds back a tool call) "
        "gets a `: keep-alive` comment (null: none)",
    )
