"""What `codelab up` starts: one command line and environment per service, wired to each other.

Each internal key (see `keys.py` for where it comes from) is handed to the service that checks it and to the one
that calls it (LLM_PROXY__INTERNAL_API_KEY = AGENT_RUNTIME__LLM_PROXY_API_KEY, and so on); keys never reach a log
line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from codelab_client.launcher.keys import (
    AGENT_RUNTIME_KEY,
    CLIENT_TOKEN,
    CLIENT_TOKENS_SETTING,
    GATEWAY_KEY,
    LLM_PROXY_KEY,
    LOCAL_PRINCIPAL,
    configured,
)

LOCAL_MODELS = ("qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b")
"""The default first: the 1.5B model completes far more of bench/agent_eval's tasks (docs/benchmarks.md)."""
LOCAL_MODEL_CONTEXT = 8192
LOCAL_MODEL_PARALLEL = 2
"""Request slots of the local model server, each with the whole context: a second session's request is answered at
once instead of waiting for another session's long answer."""

LOCAL_MODEL_TOOLS = ("read_file", "write_file", "edit_file", "list_files", "search_in_project", "run_command")
"""What the embedded models are offered: with create_directory, git_diff and apply_patch in the list they pick those
for jobs write_file and edit_file do (`bench/agent_eval`). edit_file stays: without it the 1.5B model passed about
as many of the suite's tasks (16 of 32, against 15 and 16 with it), but a file longer than one answer
(`max_tokens`) could then only be rewritten whole, and be cut short."""


@dataclass(frozen=True, slots=True)
class Ports:
    gateway: int = 8000
    agent_runtime: int = 8001
    llm_proxy: int = 8002
    model: int = 8003


@dataclass(frozen=True, slots=True)
class UpOptions:
    model: str = LOCAL_MODELS[0]
    start_model: bool = True
    model_parallel: int = LOCAL_MODEL_PARALLEL
    data_dir: Path = Path("data")
    ports: Ports = field(default_factory=Ports)
    models_file: Path | None = None
    """An llm-proxy models file (LLM_PROXY__MODELS_FILE); without it llm-proxy serves the local model."""
    host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    argv: list[str]
    env: dict[str, str]
    """Added to the launcher's own environment (which the child inherits)."""
    port: int
    health_url: str
    ready_line: str | None = None
    """A line prefix on the child's output that also means ready (the local model prints `ready http://...`)."""


def plan_services(options: UpOptions, keys: Mapping[str, str]) -> list[ServiceSpec]:
    """The services: the local model (unless disabled), llm-proxy, agent-runtime, gateway (stopped in reverse)."""
    host, ports = options.host, options.ports
    python = [sys.executable, "-m"]
    proxy_key, agent_key, gateway_key = keys[LLM_PROXY_KEY], keys[AGENT_RUNTIME_KEY], keys[GATEWAY_KEY]
    database = (options.data_dir.resolve() / "agent-runtime.db").as_posix()
    # Read only with GATEWAY__CLIENT_AUTH=token; the operator's own tokens win.
    local_token = f"{LOCAL_PRINCIPAL}:{keys[CLIENT_TOKEN]}"
    client_tokens = {} if configured(CLIENT_TOKENS_SETTING) else {CLIENT_TOKENS_SETTING: local_token}
    common = {"PYTHONUNBUFFERED": "1"}
    specs: list[ServiceSpec] = []
    if options.start_model:
        specs.append(
            ServiceSpec(
                "local-model",
                [
                    *python,
                    "codelab_local_model",
                    "--model",
                    options.model,
                    "--host",
                    host,
                    "--port",
                    str(ports.model),
                    "--ctx-size",
                    str(LOCAL_MODEL_CONTEXT),
                    "--parallel",
                    str(options.model_parallel),
                ],
                dict(common),
                ports.model,
                f"http://{host}:{ports.model}/health",
                ready_line="ready http",
            )
        )
    proxy_env = {
        **common,
        "LLM_PROXY__INTERNAL_API_KEY": proxy_key,
        "LLM_PROXY__HOST": host,
        "LLM_PROXY__PORT": str(ports.llm_proxy),
        "LLM_PROXY__LOCAL_MODEL": options.model,
        "LLM_PROXY__LOCAL_MODEL_URL": f"http://{host}:{ports.model}/v1",
        "LLM_PROXY__LOCAL_MODEL_CONTEXT_WINDOW": str(LOCAL_MODEL_CONTEXT),
    }
    if options.models_file is not None:
        proxy_env["LLM_PROXY__MODELS_FILE"] = str(options.models_file.resolve())
    specs.append(
        ServiceSpec(
            "llm-proxy",
            [*python, "codelab_llm_proxy"],
            proxy_env,
            ports.llm_proxy,
            f"http://{host}:{ports.llm_proxy}/health",
        )
    )
    agent_env = {
        **common,
        "AGENT_RUNTIME__INTERNAL_API_KEY": agent_key,
        "AGENT_RUNTIME__HOST": host,
        "AGENT_RUNTIME__PORT": str(ports.agent_runtime),
        "AGENT_RUNTIME__LLM_PROXY_URL": f"http://{host}:{ports.llm_proxy}",
        "AGENT_RUNTIME__LLM_PROXY_API_KEY": proxy_key,
        "AGENT_RUNTIME__MODEL": options.model,
        "AGENT_RUNTIME__DATABASE_URL": f"sqlite+aiosqlite:///{database}",
    }
    if options.model in LOCAL_MODELS:
        agent_env["AGENT_RUNTIME__MODEL_TOOLS"] = json.dumps(LOCAL_MODEL_TOOLS)
    specs.append(
        ServiceSpec(
            "agent-runtime",
            [*python, "codelab_agent_runtime"],
            agent_env,
            ports.agent_runtime,
            f"http://{host}:{ports.agent_runtime}/health",
        )
    )
    specs.append(
        ServiceSpec(
            "gateway",
            [*python, "codelab_gateway"],
            {
                **common,
                "GATEWAY__INTERNAL_API_KEY": gateway_key,
                "GATEWAY__HOST": host,
                "GATEWAY__PORT": str(ports.gateway),
                "GATEWAY__AGENT_RUNTIME_URL": f"http://{host}:{ports.agent_runtime}",
                "GATEWAY__AGENT_RUNTIME_API_KEY": agent_key,
                **client_tokens,
            },
            ports.gateway,
            f"http://{host}:{ports.gateway}/health",
        )
    )
    return specs
