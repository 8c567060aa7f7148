"""Configuration as an operator meets it: `.env` files, `.env.example`, and keys that must be set."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from codelab_common.testing import free_port, wait_for_health

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "scripts" / "gen_config_reference.py"
SERVICES = ("codelab_gateway", "codelab_agent_runtime", "codelab_llm_proxy")


def _clean_environ() -> dict[str, str]:
    prefixes = ("GATEWAY__", "AGENT_RUNTIME__", "LLM_PROXY__")
    return {name: value for name, value in os.environ.items() if not name.startswith(prefixes)}


def test_env_example_and_the_reference_match_the_settings_classes() -> None:
    check = subprocess.run([sys.executable, GENERATOR, "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_line_of_env_example_is_a_valid_setting(tmp_path: Path) -> None:
    """Uncommented whole, `.env.example` (with keys filled in) loads in every service as its defaults."""
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("# ") and "=" in line and line[2:].split("=", 1)[0].isupper():
            name, value = line[2:].split("=", 1)
            lines.append(f"{name}={value or ('a-key' if name.endswith('INTERNAL_API_KEY') else '')}")
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    script = (
        "from codelab_gateway.core.config import Settings as G\n"
        "from codelab_agent_runtime.core.config import Settings as A\n"
        "from codelab_llm_proxy.core.config import Settings as L\n"
        "for s in (G(), A(), L()):\n"
        "    assert s.internal_api_key.get_secret_value() == 'a-key', s\n"
        "assert A().llm_proxy_api_key.get_secret_value() == 'a-key'\n"
        "print(G().port, A().port, L().port, A().model_tools)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=_clean_environ(), capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["8000", "8001", "8002", "None"]


async def test_a_service_reads_dotenv_in_its_folder_and_the_environment_wins(tmp_path: Path) -> None:
    from_file, from_environ = free_port(), free_port()
    (tmp_path / ".env").write_text(
        f"GATEWAY__INTERNAL_API_KEY=file-key\nGATEWAY__AGENT_RUNTIME_API_KEY=x\nGATEWAY__PORT={from_file}\n"
    )
    environ = {**_clean_environ(), "GATEWAY__PORT": str(from_environ)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "codelab_gateway", cwd=tmp_path, env=environ, stdout=subprocess.DEVNULL
    )
    try:
        await wait_for_health(f"http://127.0.0.1:{from_environ}", timeout=30)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{from_environ}/metrics", headers={"X-Internal-Auth": "file-key"}) as got,
        ):
            assert got.status == 200, "the key came from .env"
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


@pytest.mark.parametrize("service", SERVICES)
def test_a_missing_or_empty_key_stops_the_service_at_start_with_its_name(service: str, tmp_path: Path) -> None:
    prefix = {"codelab_gateway": "GATEWAY", "codelab_agent_runtime": "AGENT_RUNTIME"}.get(service, "LLM_PROXY")
    environ = {**_clean_environ(), f"{prefix}__INTERNAL_API_KEY": "  "}
    started = subprocess.run(
        [sys.executable, "-m", service], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=60
    )
    assert started.returncode == 1
    assert started.stderr.startswith("invalid settings: ")
    assert f"{prefix}__INTERNAL_API_KEY: Value error, must not be empty" in started.stderr
    assert len(started.stderr.strip().splitlines()) == 1, started.stderr
