"""The table of models the proxy serves: public name → provider, upstream model, URL, key and limits.

Read once at startup from a YAML file (`LLM_PROXY__MODELS_FILE`), or built from the settings when no file is
given (the embedded local model). See `models.example.yaml` for the file's shape.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from codelab_llm_proxy.core.config import Settings

DEFAULT_MAX_OUTPUT_TOKENS = 4096
"""A whole agent step of a capable model: prose and a tool call carrying a file of a few hundred lines."""


class ModelConfigError(ValueError):
    """The models file is missing, unreadable or invalid; raised at startup, never per request."""


class RetryPolicy(BaseModel):
    """How often one deployment is tried before the router fails over (only before the answer's first byte)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=3, ge=1)
    """Tries per deployment, the first included (1 = no retry)."""
    base_delay_s: float = Field(default=0.5, ge=0)
    """Backoff before the second try; doubles each try, with jitter, up to `max_delay_s`."""
    max_delay_s: float = Field(default=8.0, ge=0)
    max_retry_after_s: float = Field(default=10.0, ge=0)
    """An upstream `Retry-After` up to this long is waited out; a longer one moves on to the next deployment."""


class CircuitBreakerPolicy(BaseModel):
    """When a deployment is taken out of rotation: `error_ratio` of the calls in the last `window_s` failed (and
    there were at least `min_calls`); after `cooldown_s` one probe request may try it again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_s: float = Field(default=60.0, gt=0)
    min_calls: int = Field(default=10, ge=1)
    error_ratio: float = Field(default=0.5, gt=0, le=1)
    cooldown_s: float = Field(default=30.0, ge=0)


class DeploymentConfig(BaseModel):
    """One upstream serving a public model; unset fields are taken from the model entry.

    `tool_parser` may be set to null to serve a deployment natively (its upstream calls tools itself) when the
    model entry names a parser for its other deployments.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = Field(default=None, min_length=1)
    provider: str | None = None
    upstream_model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    api_version: str | None = None
    connect_timeout_s: float | None = Field(default=None, gt=0)
    read_timeout_s: float | None = Field(default=None, gt=0)
    first_token_timeout_s: float | None = Field(default=None, gt=0)
    total_timeout_s: float | None = Field(default=None, gt=0)
    tool_parser: str | None = None
    constrain_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, gt=0)
    stream_upstream: bool | None = None


class ModelConfig(BaseModel):
    """One public model. `api_key_env` names the environment variable holding the key (the key never sits here).

    The model's own `provider`/`base_url`/... describe its one upstream; a `deployments` list instead gives several,
    tried in order (each entry overrides the model's fields). `fallbacks` names other public models tried after
    all of this model's deployments. `resolved_deployments()` hands out one `ModelConfig` per deployment, so a
    provider is always built from a plain `ModelConfig`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    provider: str = "openai-compatible"
    upstream_model: str = ""
    base_url: str = ""
    api_key_env: str | None = None
    api_version: str | None = None
    """Azure OpenAI's `api-version` query parameter (provider `azure-openai`)."""
    context_window: int = Field(gt=0)
    tokenizer: Literal["llama.cpp"] | None = None
    """Whose tokenizer counts this model's prompts for `POST /v1/llm/tokenize`: `llama.cpp` (its server's `/tokenize`)
    or none (callers estimate)."""
    tool_parser: str | None = None
    """Recover tool calls this upstream writes as text (`json`); its requests are prepared for that parser (tools as
    a listing in the system message). Unset: tools travel natively."""
    constrain_tool_calls: bool = False
    """Send a llama.cpp grammar (GBNF) so tool calls come out well formed; only for llama.cpp upstreams."""
    stream_upstream: bool = False
    """Ask the upstream for a stream even when the client wants a whole answer (assembled by the proxy), so a client
    that leaves stops the generation: llama.cpp stops a streamed answer then, but finishes a non-streamed one."""
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=300.0, gt=0)
    """Longest silence while waiting for the answer or between two streamed chunks (the idle timeout)."""
    first_token_timeout_s: float | None = Field(default=None, gt=0)
    """Longest wait for the first streamed chunk (connect included); unset: only `read_timeout_s` applies."""
    total_timeout_s: float | None = Field(default=None, gt=0)
    """Longest one upstream request may take from start to last byte; unset: no limit."""
    owned_by: str | None = None
    max_output_tokens: int = Field(default=DEFAULT_MAX_OUTPUT_TOKENS, gt=0)
    """`max_tokens` sent upstream when the client gave neither `max_tokens` nor `max_completion_tokens`, so no
    answer runs on until the context is full (lowered to what the context window leaves after the prompt)."""
    rpm: int | None = Field(default=None, gt=0)
    """Requests per rate-limit window for this model, all callers together; unset: no model limit."""
    tpm: int | None = Field(default=None, gt=0)
    """Tokens (prompt + completion) per rate-limit window for this model, all callers together."""
    deployments: tuple[DeploymentConfig, ...] = ()
    fallbacks: tuple[str, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    circuit_breaker: CircuitBreakerPolicy = CircuitBreakerPolicy()
    deployment_id: str = ""
    """Set on the copies `resolved_deployments()` returns: the deployment's id (its breaker and log name)."""

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _has_an_upstream(self) -> ModelConfig:
        if not self.deployments and not self.base_url:
            raise ValueError(f"model {self.name!r} needs a base_url or a deployments list")
        for index, deployment in enumerate(self.deployments):
            if not (deployment.base_url or self.base_url):
                raise ValueError(f"model {self.name!r}: deployment {index} has no base_url")
        if self.name in self.fallbacks:
            raise ValueError(f"model {self.name!r} lists itself as a fallback")
        return self

    def resolved_deployments(self) -> list[ModelConfig]:
        """This model's upstreams in order, each a `ModelConfig` with the deployment's fields filled in."""
        if not self.deployments:
            return [self.model_copy(update={"deployment_id": self.deployment_id or self.name})]
        resolved = []
        for index, deployment in enumerate(self.deployments):
            update: dict[str, Any] = deployment.model_dump(exclude_none=True, exclude={"id"})
            if "tool_parser" in deployment.model_fields_set:
                update["tool_parser"] = deployment.tool_parser  # null: this deployment calls tools natively
            if "base_url" in update:
                update["base_url"] = update["base_url"].rstrip("/")
            update["deployment_id"] = deployment.id or f"{self.name}#{index}"
            update["deployments"] = ()
            resolved.append(self.model_copy(update=update))
        return resolved

    @property
    def upstream_name(self) -> str:
        return self.upstream_model or self.name

    def api_key(self) -> str | None:
        """The key from the environment, read when needed so rotating it needs no config change."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[ModelConfig] = Field(min_length=1)


class ModelRegistry:
    """Public name → `ModelConfig`, in the file's order."""

    def __init__(self, models: list[ModelConfig]) -> None:
        self._models: dict[str, ModelConfig] = {}
        for model in models:
            if model.name in self._models:
                raise ModelConfigError(f"model {model.name!r} is configured twice")
            self._models[model.name] = model
        ids: set[str] = set()
        for model in models:
            for fallback in model.fallbacks:
                if fallback not in self._models:
                    raise ModelConfigError(f"model {model.name!r}: fallback {fallback!r} is not a configured model")
            for deployment in model.resolved_deployments():
                if deployment.deployment_id in ids:
                    raise ModelConfigError(f"deployment id {deployment.deployment_id!r} is used twice")
                ids.add(deployment.deployment_id)

    def route(self, name: str) -> list[ModelConfig]:
        """The deployments a request for `name` may use, in order: its own, then each fallback model's own."""
        model = self._models[name]
        chain = list(model.resolved_deployments())
        for fallback in model.fallbacks:
            chain.extend(self._models[fallback].resolved_deployments())
        return chain

    def get(self, name: str) -> ModelConfig | None:
        return self._models.get(name)

    def __iter__(self) -> Iterator[ModelConfig]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)


def load_models_file(path: Path) -> list[ModelConfig]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelConfigError(f"cannot read models file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ModelConfigError(f"models file {path} is not valid YAML: {exc}") from exc
    try:
        return ModelsFile.model_validate(raw).models
    except ValidationError as exc:
        raise ModelConfigError(f"models file {path} is invalid: {exc}") from exc


def default_models(settings: Settings) -> list[ModelConfig]:
    """The built-in table: the embedded local llama.cpp server, with the JSON-text tool-call parser.

    No grammar: with llama.cpp's grammar sampler a call is generated 7-10 times slower on this kind of machine
    (0.4-1.1 against 7 tokens/s measured), even with a grammar that only fixes the call's opening; a wrong call is
    cheaper to send back to the model than every call is to constrain."""
    return [
        ModelConfig(
            name=settings.local_model,
            provider="openai-compatible",
            upstream_model=settings.local_model,
            base_url=settings.local_model_url,
            context_window=settings.local_model_context_window,
            tool_parser="json",
            tokenizer="llama.cpp",
            stream_upstream=True,
            max_output_tokens=settings.local_model_max_output_tokens,
            owned_by="codelab-local",
        )
    ]


def build_registry(settings: Settings) -> ModelRegistry:
    models = load_models_file(settings.models_file) if settings.models_file else default_models(settings)
    return ModelRegistry(models)
