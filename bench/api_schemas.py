"""The API schema suite at length: Schemathesis against llm-proxy, agent-runtime and the gateway run as real processes
(`python -m codelab_<service>`, wired to one another, llm-proxy in front of the scripted upstream served here),
each with the right `X-Internal-Auth`, a wrong one and none. Prints, per run, the cases, statuses, failures and time.

    uv run python bench/api_schemas.py [--max-examples 200] [--seed N] [--services llm-proxy,agent-runtime,gateway]

The same suite as tests/test_api_schemas.py (tests/schema_suite.py: checks, streams left out, models limited to the
served ones), with more examples and, without `--seed`, a new seed each run. Exits 1 when any run failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.schema_suite, shared with the pytest suite

from codelab_common.testing import FakeOpenAI, free_port, serve_app, wait_for_health  # noqa: E402
from tests.schema_suite import SchemaReport, run_schema_suite  # noqa: E402
from tests.test_api_schemas import AGENT_RUNTIME_STREAMS, KEYS, headers_for, served_models  # noqa: E402

KEY = "bench-key"
MODELS = ["fake-model", "fake-json-model"]
SERVICES = ["llm-proxy", "agent-runtime", "gateway"]
START_S = 90.0
"""How long the three may take to answer /health (imports are slow on a busy machine)."""
MODULES = {"llm-proxy": "codelab_llm_proxy", "agent-runtime": "codelab_agent_runtime", "gateway": "codelab_gateway"}
PREFIXES = {"llm-proxy": "LLM_PROXY__", "agent-runtime": "AGENT_RUNTIME__", "gateway": "GATEWAY__"}


def environment(folder: Path, upstream_url: str, ports: dict[str, int]) -> dict[str, dict[str, str]]:
    models = [
        {
            "name": name,
            "provider": "openai-compatible",
            "upstream_model": "fake-model",
            "base_url": upstream_url,
            "context_window": 8192,
            **({"tool_parser": "json"} if name == "fake-json-model" else {}),
        }
        for name in MODELS
    ]
    models_file = folder / "models.yaml"
    models_file.write_text(yaml.safe_dump({"models": models}), encoding="utf-8")
    url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    return {
        "llm-proxy": {"LLM_PROXY__MODELS_FILE": str(models_file)},
        "agent-runtime": {
            "AGENT_RUNTIME__LLM_PROXY_URL": url["llm-proxy"],
            "AGENT_RUNTIME__LLM_PROXY_API_KEY": KEY,
            "AGENT_RUNTIME__MODEL": "fake-model",
            "AGENT_RUNTIME__DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'agent-runtime.db'}",
            "AGENT_RUNTIME__WORKSPACE_CONTEXT": "false",
        },
        "gateway": {"GATEWAY__AGENT_RUNTIME_URL": url["agent-runtime"], "GATEWAY__AGENT_RUNTIME_API_KEY": KEY},
    }


@contextmanager
def processes(folder: Path, env: dict[str, dict[str, str]], ports: dict[str, int]) -> Iterator[None]:
    """Each service as `python -m`, in `folder` (so no `.env` of the repository is read), logging warnings only."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        for service, module in MODULES.items():
            own = {"INTERNAL_API_KEY": KEY, "PORT": str(ports[service]), "LOG_LEVEL": "WARNING"}
            variables = {PREFIXES[service] + name: value for name, value in own.items()}
            with (folder / f"{service}.log").open("wb") as log:
                started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", module],
                        cwd=folder,
                        env={**os.environ, **variables, **env[service]},
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        yield
    finally:
        for process in started:
            process.terminate()
        for process in started:
            process.wait(timeout=30)


@asynccontextmanager
async def system() -> AsyncIterator[dict[str, int]]:
    """The three services up and healthy; yields their ports."""
    upstream = FakeOpenAI(model="fake-model")
    with tempfile.TemporaryDirectory(prefix="api-schemas-") as tmp:
        async with serve_app(upstream.app) as upstream_url:
            ports = {service: free_port() for service in SERVICES}
            env = environment(Path(tmp), f"{upstream_url}/v1", ports)
            with processes(Path(tmp), env, ports):
                try:
                    urls = [f"http://127.0.0.1:{port}" for port in ports.values()]
                    await asyncio.gather(*(wait_for_health(url, START_S) for url in urls))
                except TimeoutError:
                    print_logs(Path(tmp))
                    raise
                yield ports


def print_logs(folder: Path) -> None:
    for log in sorted(folder.glob("*.log")):
        print(f"---- {log.name}\n{log.read_text(errors='replace')[-3000:]}")


async def document(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/openapi.json", headers={"X-Internal-Auth": KEY}) as r:
        r.raise_for_status()
        answer: dict[str, Any] = await r.json()
        return answer


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=200, help="per operation and phase (the test: 15)")
    parser.add_argument("--seed", type=int, help="default: a new one, printed")
    parser.add_argument("--services", default=",".join(SERVICES))
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    print(f"seed {seed}, max examples {args.max_examples}")
    reports: list[SchemaReport] = []
    async with system() as ports:
        for service in args.services.split(","):
            url = f"http://127.0.0.1:{ports[service]}"
            schema = await document(url)
            if service == "llm-proxy":
                schema = served_models(schema, MODELS)
            exclude = AGENT_RUNTIME_STREAMS if service == "agent-runtime" else []
            for key in KEYS:
                report = await asyncio.to_thread(
                    run_schema_suite,
                    f"{service}, {key} key",
                    schema,
                    url,
                    headers=headers_for(key, {"X-Internal-Auth": KEY}),
                    max_examples=args.max_examples,
                    exclude_paths=exclude,
                    seed=seed,
                )
                print(report.details(), flush=True)
                reports.append(report)
    cases = sum(report.cases for report in reports)
    failures = sum(len(report.failures) + len(report.errors) for report in reports)
    print(f"total: {cases} cases, {failures} failures and errors, {sum(r.server_errors for r in reports)} 5xx")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
