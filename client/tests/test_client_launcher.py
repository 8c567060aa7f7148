"""`codelab up`'s plan (keys and names wired between services) and its fail-fast port check."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

from codelab_client.launcher import Ports, UpOptions, plan_services, resolve_keys
from codelab_client.launcher.keys import KEY_NAMES, keys_path
from codelab_client.launcher.up import run_up
from codelab_common.testing import free_port

KEYS = dict.fromkeys(KEY_NAMES, "k" * 43)


def test_keys_are_wired_between_caller_and_callee(tmp_path: Path) -> None:
    options = UpOptions(model="qwen2.5-coder-1.5b", data_dir=tmp_path)
    specs = {spec.name: spec for spec in plan_services(options, resolve_keys(tmp_path, environ={}).values)}
    assert list(specs) == ["local-model", "llm-proxy", "agent-runtime", "gateway"]
    proxy, agent, gateway = specs["llm-proxy"].env, specs["agent-runtime"].env, specs["gateway"].env
    assert proxy["LLM_PROXY__INTERNAL_API_KEY"] == agent["AGENT_RUNTIME__LLM_PROXY_API_KEY"]
    assert agent["AGENT_RUNTIME__INTERNAL_API_KEY"] == gateway["GATEWAY__AGENT_RUNTIME_API_KEY"]
    keys = {proxy["LLM_PROXY__INTERNAL_API_KEY"], agent["AGENT_RUNTIME__INTERNAL_API_KEY"]}
    keys.add(gateway["GATEWAY__INTERNAL_API_KEY"])
    assert len(keys) == 3 and all(len(key) >= 32 for key in keys)
    assert proxy["LLM_PROXY__LOCAL_MODEL"] == agent["AGENT_RUNTIME__MODEL"] == "qwen2.5-coder-1.5b"
    assert "--model" in specs["local-model"].argv and "qwen2.5-coder-1.5b" in specs["local-model"].argv
    argv = specs["local-model"].argv
    assert argv[argv.index("--parallel") + 1] == "2", "two slots: a second session never waits for a long answer"
    assert agent["AGENT_RUNTIME__DATABASE_URL"] == f"sqlite+aiosqlite:///{tmp_path.resolve()}/agent-runtime.db"
    assert gateway["GATEWAY__AGENT_RUNTIME_URL"] == "http://127.0.0.1:8001"
    offered = json.loads(agent["AGENT_RUNTIME__MODEL_TOOLS"])
    assert "edit_file" in offered and "create_directory" not in offered, "the embedded model gets the small toolset"


def test_no_model_leaves_the_model_server_out(tmp_path: Path) -> None:
    models_file = tmp_path / "models.yaml"
    specs = plan_services(UpOptions(start_model=False, data_dir=tmp_path, models_file=models_file), KEYS)
    assert [spec.name for spec in specs] == ["llm-proxy", "agent-runtime", "gateway"]
    assert specs[0].env["LLM_PROXY__MODELS_FILE"] == str(models_file.resolve())


def test_a_model_of_the_models_file_gets_every_tool(tmp_path: Path) -> None:
    options = UpOptions(model="gpt-4o", start_model=False, data_dir=tmp_path, models_file=tmp_path / "models.yaml")
    agent = next(spec for spec in plan_services(options, KEYS) if spec.name == "agent-runtime")
    assert "AGENT_RUNTIME__MODEL_TOOLS" not in agent.env


def test_a_taken_port_fails_fast_and_starts_nothing(tmp_path: Path) -> None:
    said: list[str] = []
    warned: list[str] = []
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ports = Ports(gateway=free_port(), agent_runtime=taken, llm_proxy=free_port(), model=free_port())
        options = UpOptions(start_model=False, data_dir=tmp_path / "data", ports=ports)
        code = run_up(options, say=said.append, warn=warned.append, start_timeout=5)
    assert code == 1
    assert len(warned) == 1 and f"agent-runtime port {taken}" in warned[0]
    assert not (tmp_path / "data" / "logs").exists()


def test_missing_keys_are_generated_once_and_kept_private(tmp_path: Path) -> None:
    first = resolve_keys(tmp_path, environ={}, dotenv=tmp_path / "none.env")
    again = resolve_keys(tmp_path, environ={}, dotenv=tmp_path / "none.env")

    assert first.generated == KEY_NAMES and again.generated == ()
    assert again.values == first.values and len(set(first.values.values())) == len(KEY_NAMES)
    assert keys_path(tmp_path).stat().st_mode & 0o777 == 0o600


def test_given_keys_win_environment_then_dotenv_then_the_keys_file(tmp_path: Path) -> None:
    stored = resolve_keys(tmp_path, environ={}, dotenv=tmp_path / "none.env")
    dotenv = tmp_path / ".env"
    dotenv.write_text("LLM_PROXY__INTERNAL_API_KEY=from-dotenv\nGATEWAY__INTERNAL_API_KEY=gw-dotenv\n")

    keys = resolve_keys(tmp_path, environ={"LLM_PROXY__INTERNAL_API_KEY": "from-env"}, dotenv=dotenv)

    assert keys["LLM_PROXY__INTERNAL_API_KEY"] == "from-env"
    assert keys["GATEWAY__INTERNAL_API_KEY"] == "gw-dotenv"
    assert keys["AGENT_RUNTIME__INTERNAL_API_KEY"] == stored["AGENT_RUNTIME__INTERNAL_API_KEY"]
    assert "from-env" not in keys_path(tmp_path).read_text(), "a key the user gave is never written down"


def test_codelab_env_prints_exports_a_shell_can_eval(tmp_path: Path) -> None:
    environ = {name: value for name, value in os.environ.items() if name not in KEY_NAMES}
    codelab_env = f"{shlex.quote(sys.executable)} -m codelab_client env --data-dir data"
    script = f'eval "$({codelab_env})" && printf "%s|%s" "$LLM_PROXY__INTERNAL_API_KEY" "$GATEWAY__INTERNAL_API_KEY"'
    shown = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=environ, capture_output=True, text=True)

    assert shown.returncode == 0, shown.stderr
    keys = resolve_keys(tmp_path / "data", environ={}, dotenv=tmp_path / ".env")
    assert keys.generated == (), "codelab env kept the keys it made"
    assert shown.stdout == f"{keys['LLM_PROXY__INTERNAL_API_KEY']}|{keys['GATEWAY__INTERNAL_API_KEY']}"
