"""Starting a service process: settings from the environment, logging, uvicorn."""

from __future__ import annotations

import gc
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from codelab_common.logs import configure_logging
from codelab_common.settings import ServiceSettings


def load_settings[S: ServiceSettings](settings_class: type[S]) -> S:
    """The service's settings, or a readable message and exit status 1 when the environment lacks some."""
    try:
        return settings_class()  # type: ignore[call-arg]  # required values come from the environment
    except ValidationError as exc:
        prefix = settings_class.model_config.get("env_prefix", "")
        problems = "; ".join(f"{prefix}{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        sys.exit(f"invalid settings: {problems}")


GRACEFUL_SHUTDOWN_S = 2
"""How long a stopping service lets open streams run on: event streams follow a session until their reader leaves,
so they are ended after this rather than waited for (their readers resume from their last seq elsewhere)."""


def run_service(service: str, app: Any, settings: ServiceSettings, **uvicorn_options: Any) -> None:
    """Serve `app` with uvicorn (uvloop, httptools) after routing every log line through structlog."""
    configure_logging(service, settings.log_level, settings.log_json, settings.secret_values())
    # Everything imported so far lives as long as the process: out of the collector's sight, a full collection
    # (which pauses the event loop) walks only what requests create.
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **uvicorn_options,
    )
