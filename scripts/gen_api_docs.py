"""Write the API documents under docs/api/ from the code: each service's OpenAPI, the client WebSocket's AsyncAPI.

    .venv/bin/python scripts/gen_api_docs.py           # write them
    .venv/bin/python scripts/gen_api_docs.py --check   # exit 1, naming each document that differs from the code

Each app is built with placeholder settings and the services' environment variables ignored, so a document depends
on the code alone. Keys are sorted and the file ends with a newline, so a change to the code is a small diff.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from codelab_agent_runtime.core.config import Settings as AgentRuntimeSettings
from codelab_agent_runtime.main import create_app as create_agent_runtime
from codelab_gateway.api.asyncapi import asyncapi_document
from codelab_gateway.core.config import Settings as GatewaySettings
from codelab_gateway.main import create_app as create_gateway
from codelab_llm_proxy.core.config import Settings as LLMProxySettings
from codelab_llm_proxy.main import create_app as create_llm_proxy

ROOT = Path(__file__).resolve().parent.parent
API_DOCS = ROOT / "docs" / "api"
COMMAND = ".venv/bin/python scripts/gen_api_docs.py"
ENV_PREFIXES = ("GATEWAY__", "AGENT_RUNTIME__", "LLM_PROXY__")
KEY = "api-docs"
"""A placeholder for the keys every service requires."""


def _gateway() -> FastAPI:
    return create_gateway(GatewaySettings(internal_api_key=KEY, agent_runtime_api_key=KEY))  # type: ignore[arg-type]


def _agent_runtime() -> FastAPI:
    return create_agent_runtime(AgentRuntimeSettings(internal_api_key=KEY, llm_proxy_api_key=KEY))  # type: ignore[arg-type]


def _llm_proxy() -> FastAPI:
    return create_llm_proxy(LLMProxySettings(internal_api_key=KEY))  # type: ignore[arg-type]


DOCUMENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "gateway.openapi.json": lambda: _gateway().openapi(),
    "agent-runtime.openapi.json": lambda: _agent_runtime().openapi(),
    "llm-proxy.openapi.json": lambda: _llm_proxy().openapi(),
    "websocket.asyncapi.json": lambda: asyncapi_document(_gateway()),
}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a document is stale")
    check = parser.parse_args().check
    for key in [key for key in os.environ if key.startswith(ENV_PREFIXES)]:
        del os.environ[key]
    stale = []
    for name, build in DOCUMENTS.items():
        path = API_DOCS / name
        text = render(build())
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if check:
            stale.append(path.relative_to(ROOT))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if not stale:
        return 0
    for path in stale:
        print(f"{path} is stale: it differs from what the code generates", file=sys.stderr)
    print(f"regenerate with: {COMMAND}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
