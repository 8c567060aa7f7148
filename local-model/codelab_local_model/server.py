"""Serve a GGUF model with llama.cpp's own OpenAI-compatible HTTP server, inside this Python process.

xllamacpp runs the server (`/v1/chat/completions`, `/v1/models`, `/health`) on background threads for as long as
the `Server` object and the process live; the caller keeps the main thread alive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import xllamacpp

DEFAULT_PARALLEL = 2
"""Two slots: one long answer (an agent step runs up to its max_tokens) never makes another session wait for it."""
DEFAULT_CACHE_RAM_MIB = 1024
"""llama.cpp keeps the state of prompts it moves out of a slot in memory (to resume a session that comes back) up to
this size; its own default, 8 GiB, lets a long-running server grow by ~37 MB (0.5B model) per distinct 3,000-token
prompt until it holds 9 GB."""


@dataclass(frozen=True, slots=True)
class ServerOptions:
    model_path: Path
    alias: str
    host: str = "127.0.0.1"
    port: int = 8003
    """0 picks a free port."""
    ctx_size: int = 8192
    """The context window of each request, always explicit: requests that do not fit are refused, never silently
    truncated."""
    threads: int = 2
    parallel: int = DEFAULT_PARALLEL
    """Request slots decoded together: a second session is answered at once instead of waiting for a long answer
    to finish. llama.cpp splits its context evenly between the slots, so it is allocated `ctx_size * parallel`
    tokens and every slot gets the full `ctx_size` (the KV cache grows with `parallel`)."""
    cache_ram_mib: int = DEFAULT_CACHE_RAM_MIB
    """Upper bound of llama.cpp's in-memory prompt cache (0: none)."""
    chat_template: str | None = None


def build_params(options: ServerOptions) -> xllamacpp.CommonParams:
    params = xllamacpp.CommonParams()
    params.model.path = str(options.model_path)
    params.model_alias = {options.alias}
    params.hostnames = [options.host]
    params.port = options.port
    params.n_ctx = options.ctx_size * options.parallel
    params.n_parallel = options.parallel
    params.ctx_shift = False
    params.cache_ram_mib = options.cache_ram_mib
    params.use_jinja = True
    params.verbosity = -1
    params.cpuparams.n_threads = options.threads
    params.cpuparams_batch.n_threads = options.threads
    if options.chat_template:
        params.chat_template = options.chat_template
    return params


def start_server(options: ServerOptions) -> tuple[xllamacpp.Server, str]:
    """Load the model and start serving; returns the server (keep a reference) and its base URL (no `/v1`)."""
    server = xllamacpp.Server(build_params(options))
    return server, str(server.listening_address).rstrip("/")
