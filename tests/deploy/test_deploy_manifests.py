"""The deployment files agree with the code: docker-compose.yml, deploy/k8s/ and each service's Dockerfile.

Read without Docker or a cluster and checked against the services' settings classes and apps: every port is the
service's default port; every environment variable a service is given is one of its settings (prefix, field name in
upper case, `__` into nested models), every setting without a default is given, and the settings accept the values;
health checks and probes use routes of the app that answer without the internal key (`/health` for liveness and
compose, `/ready` for readiness); each caller reaches its callee by the callee's name and port with the callee's own
key; llm-proxy's models files load and serve agent-runtime's model.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import pytest
import yaml
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError
from starlette.routing import Match
from starlette.types import Message

from codelab_agent_runtime.core.config import Settings as AgentRuntimeSettings
from codelab_agent_runtime.main import create_app as create_agent_runtime
from codelab_common.settings import ServiceSettings
from codelab_gateway.core.config import Settings as GatewaySettings
from codelab_gateway.main import create_app as create_gateway
from codelab_llm_proxy.core.config import Settings as LLMProxySettings
from codelab_llm_proxy.main import create_app as create_llm_proxy

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S_DIR = ROOT / "deploy" / "k8s"
RUNTIME_IMAGE = "python:3.12-slim"
LIVENESS_PATH = "/health"
READINESS_PATH = "/ready"
PROCESS_ENV = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}
"""What a Dockerfile may set beyond the service's own settings."""


@dataclass(frozen=True)
class Service:
    name: str
    """Its compose service, Dockerfile folder, and k8s Deployment, Service, HPA and PDB."""
    module: str
    settings: type[ServiceSettings]
    create_app: Callable[..., FastAPI]

    @property
    def prefix(self) -> str:
        return str(self.settings.model_config.get("env_prefix", ""))

    @property
    def port(self) -> int:
        return int(self.settings.model_fields["port"].default)

    @property
    def required(self) -> set[str]:
        """Environment names of the settings without a default."""
        fields = self.settings.model_fields.items()
        return {self.prefix + name.upper() for name, info in fields if info.is_required()}

    def required_given(self, values: dict[str, str]) -> set[str]:
        """The settings without a default, and those that other values make required."""
        needed = set(self.required)
        if values.get(self.prefix + "CLIENT_AUTH") == "token":
            needed.add(self.prefix + "CLIENT_TOKENS")  # the gateway's clients authenticate with static tokens
        return needed

    def app(self) -> FastAPI:
        names = {name.removeprefix(self.prefix).lower() for name in self.required}
        return self.create_app(self.settings.model_validate(dict.fromkeys(names, "test-key")))


SERVICES = {
    service.name: service
    for service in (
        Service("gateway", "codelab_gateway", GatewaySettings, create_gateway),
        Service("agent-runtime", "codelab_agent_runtime", AgentRuntimeSettings, create_agent_runtime),
        Service("llm-proxy", "codelab_llm_proxy", LLMProxySettings, create_llm_proxy),
    )
}


@dataclass(frozen=True)
class Call:
    """`caller` reaches `callee` at its `<callee>_url` setting with its `<callee>_api_key` setting."""

    caller: str
    callee: str

    @property
    def url(self) -> str:
        return SERVICES[self.caller].prefix + self.callee.replace("-", "_").upper() + "_URL"

    @property
    def key(self) -> str:
        return SERVICES[self.caller].prefix + self.callee.replace("-", "_").upper() + "_API_KEY"


CALLS = (Call("gateway", "agent-runtime"), Call("agent-runtime", "llm-proxy"))


# --- docker-compose.yml -------------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(text: str) -> str:
    """The value `docker compose` gives `text` when .env sets only the required variables (to a stand-in)."""

    def value(match: re.Match[str]) -> str:
        if match["op"] and match["op"].endswith("?"):
            return f"<{match['name']} from .env>"
        return match["arg"] if match["op"] else ""

    return _VARIABLE.sub(value, text.replace("$$", "\0")).replace("\0", "$")


def origin(text: str) -> str:
    """Where a compose value comes from: the .env variables it names, else the literal text."""
    names = sorted({match["name"] for match in _VARIABLE.finditer(text)})
    return f".env {', '.join(names)}" if names else repr(text)


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return loaded


def compose_service(name: str) -> dict[str, Any]:
    services: dict[str, Any] = compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    return dict(services[name])


@dataclass
class Env:
    """The environment one deployment file gives a service."""

    where: str
    values: dict[str, str] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)
    """Where each value comes from (the .env variables it names, a Secret's key); a caller's key and its callee's
    own key must share one."""


def compose_env(service: Service) -> Env:
    env = Env(f"docker-compose.yml services.{service.name}.environment")
    raw = compose_service(service.name).get("environment") or {}
    items = raw.items() if isinstance(raw, dict) else (entry.partition("=")[::2] for entry in raw)
    for name, value in items:
        text = "" if value is None else str(value)
        env.values[name] = interpolate(text)
        env.origins[name] = origin(text)
    return env


def compose_models_file() -> tuple[str, str]:
    """llm-proxy's models file in compose: where it is mounted, and its text."""
    mounts = compose_service("llm-proxy").get("configs") or []
    assert len(mounts) == 1, "docker-compose.yml: llm-proxy mounts one config, its models file"
    content = compose()["configs"][mounts[0]["source"]]["content"]
    return mounts[0]["target"], interpolate(content)


# --- deploy/k8s ---------------------------------------------------------------------------------------------------


def manifests() -> dict[tuple[str, str], dict[str, Any]]:
    """Every object under deploy/k8s by (kind, name)."""
    objects: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(K8S_DIR.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                key = (document["kind"], document["metadata"]["name"])
                assert key not in objects, f"deploy/k8s: {key[0]} {key[1]} is defined twice"
                objects[key] = document
    return objects


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    objects = manifests()
    assert (kind, name) in objects, f"deploy/k8s has no {kind} {name!r}"
    return objects[kind, name]


def pod_spec(service: Service) -> dict[str, Any]:
    spec: dict[str, Any] = k8s_object("Deployment", service.name)["spec"]["template"]["spec"]
    return spec


def container(service: Service) -> dict[str, Any]:
    containers = pod_spec(service)["containers"]
    assert len(containers) == 1, f"deploy/k8s Deployment {service.name}: one container expected"
    return dict(containers[0])


def k8s_env(service: Service) -> Env:
    env = Env(f"deploy/k8s Deployment {service.name}")

    def take(name: str, kind: str, source: str, key: str) -> None:
        data = k8s_object(kind, source).get("data" if kind == "ConfigMap" else "stringData") or {}
        assert key in data, f"{env.where}: {name} refers to {kind} {source} key {key!r}, which it lacks"
        env.values[name], env.origins[name] = str(data[key]), f"{kind} {source}/{key}"

    for source in container(service).get("envFrom", []):
        for kind, reference in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if reference in source:
                name = source[reference]["name"]
                for key in k8s_object(kind, name).get("data" if kind == "ConfigMap" else "stringData") or {}:
                    take(key, kind, name, key)
    for item in container(service).get("env", []):
        reference = item.get("valueFrom", {})
        if "secretKeyRef" in reference:
            take(item["name"], "Secret", reference["secretKeyRef"]["name"], reference["secretKeyRef"]["key"])
        elif "configMapKeyRef" in reference:
            take(item["name"], "ConfigMap", reference["configMapKeyRef"]["name"], reference["configMapKeyRef"]["key"])
        else:
            env.values[item["name"]] = env.origins[item["name"]] = str(item.get("value", ""))
    return env


def container_port(service: Service, port: int | str) -> int:
    """A probe's or Service's port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    ports = {entry.get("name"): entry["containerPort"] for entry in container(service).get("ports", [])}
    assert port in ports, f"deploy/k8s Deployment {service.name}: no container port named {port!r}"
    return int(ports[port])


def k8s_models_file() -> tuple[str, str]:
    """llm-proxy's models file in k8s: where it is mounted, and its text."""
    mounts = {mount["name"]: mount["mountPath"] for mount in container(SERVICES["llm-proxy"]).get("volumeMounts", [])}
    for volume in pod_spec(SERVICES["llm-proxy"]).get("volumes", []):
        if "configMap" in volume and volume["name"] in mounts:
            (key, text), *others = k8s_object("ConfigMap", volume["configMap"]["name"])["data"].items()
            assert not others, f"deploy/k8s ConfigMap {volume['configMap']['name']}: one key, the models file"
            return f"{mounts[volume['name']]}/{key}", str(text)
    raise AssertionError("deploy/k8s Deployment llm-proxy mounts no ConfigMap with its models file")


# --- Dockerfiles --------------------------------------------------------------------------------------------------


@dataclass
class Dockerfile:
    path: str
    args: dict[str, str]
    """ARG defaults declared before the first FROM."""
    stages: list[list[tuple[str, str]]]
    """Each stage's instructions (name in upper case, arguments), continuation lines joined."""

    @property
    def runtime(self) -> list[tuple[str, str]]:
        return self.stages[-1]

    def instructions(self, name: str) -> list[str]:
        return [args for instruction, args in self.runtime if instruction == name]

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for args in self.instructions("ENV"):
            for token in shlex.split(args):
                key, equals, value = token.partition("=")
                assert equals, f"{self.path}: ENV {args!r} is not in KEY=value form"
                values[key] = value
        return values


def dockerfile(service: Service) -> Dockerfile:
    path = f"{service.name}/Dockerfile"
    text = re.sub(r"\\\n", " ", (ROOT / path).read_text(encoding="utf-8"))
    parsed = Dockerfile(path, {}, [])
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        instruction, args = instruction.upper(), args.strip()
        if instruction == "FROM":
            parsed.stages.append([])
        if parsed.stages:
            parsed.stages[-1].append((instruction, args))
        elif instruction == "ARG":
            name, _, default = args.partition("=")
            parsed.args[name] = default
    assert parsed.stages, f"{path} has no FROM"
    return parsed


def exec_form(args: str) -> list[str]:
    """The JSON array of a CMD (or of a HEALTHCHECK's CMD)."""
    command = json.loads(args.split("CMD", 1)[1] if "CMD" in args else args)
    assert isinstance(command, list), f"exec form expected, got {args!r}"
    return [str(part) for part in command]


# --- health checks ------------------------------------------------------------------------------------------------

_HEALTH_URL = re.compile(
    r"http://(?:127\.0\.0\.1|localhost):"
    r"(?:(?P<port>\d+)|'\s*\+\s*os\.environ\[['\"](?P<variable>\w+)['\"]\]\s*\+\s*')"
    r"(?P<path>/[\w/.-]*)"
)


@dataclass(frozen=True)
class HealthCheck:
    where: str
    port: int | None
    path: str


def health_check(where: str, command: list[str], env: dict[str, str]) -> HealthCheck:
    """The port and path a `python -c` health check dials, its port read from the container's environment."""
    match = _HEALTH_URL.search(" ".join(command))
    assert match, f"{where}: no http://127.0.0.1:PORT/PATH in the health check {command!r}"
    if match["port"]:
        return HealthCheck(where, int(match["port"]), match["path"])
    port = env.get(match["variable"])
    assert port is not None, f"{where}: the health check reads {match['variable']}, which the container lacks"
    return HealthCheck(where, int(port), match["path"])


def compose_health_check(service: Service) -> HealthCheck:
    where = f"docker-compose.yml services.{service.name}.healthcheck"
    check = compose_service(service.name).get("healthcheck")
    assert check, f"{where} is missing"
    return health_check(where, list(check["test"]), dockerfile(service).env() | compose_env(service).values)


def dockerfile_health_check(service: Service) -> HealthCheck:
    image = dockerfile(service)
    checks = image.instructions("HEALTHCHECK")
    assert len(checks) == 1, f"{image.path}: one HEALTHCHECK expected in the runtime stage, found {len(checks)}"
    return health_check(f"{image.path} HEALTHCHECK", exec_form(checks[0]), image.env())


def serves(app: FastAPI, path: str) -> bool:
    """Whether a route of the app takes `GET path` (FastAPI keeps included routers whole, so each route is asked)."""
    scope = {"type": "http", "method": "GET", "path": path, "root_path": "", "headers": [], "query_string": b""}
    return any(route.matches(scope)[0] == Match.FULL for route in app.routes)


async def status_without_key(app: FastAPI, path: str) -> int:
    """The status of `GET path` sent with no X-Internal-Auth (lifespan not run: dependencies are down)."""
    statuses: list[int] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
    }
    with contextlib.suppress(Exception):  # a handler that fails without its lifespan still answered 500 first
        await app(scope, receive, send)
    assert statuses, f"GET {path} sent no response"
    return statuses[0]


# --- names --------------------------------------------------------------------------------------------------------


def is_setting(model: type[BaseModel], path: list[str]) -> bool:
    """Whether `path` (an environment name's parts after the prefix, split at `__`) names a field of `model`."""
    info = model.model_fields.get(path[0].lower())
    if info is None:
        return False
    if len(path) == 1:
        return True
    nested = [arg for arg in (info.annotation, *get_args(info.annotation)) if isinstance(arg, type)]
    return any(issubclass(arg, BaseModel) and is_setting(arg, path[1:]) for arg in nested)


def misnamed(service: Service, env: Env, also: set[str]) -> list[str]:
    problems = []
    for name in env.values:
        if name.startswith(service.prefix):
            rest = name.removeprefix(service.prefix)
            if name != name.upper() or not rest or not is_setting(service.settings, rest.split("__")):
                problems.append(
                    f"{env.where}: {name} is not a setting of {service.name} ({service.settings.__module__})"
                )
        elif name not in also:
            problems.append(f"{env.where}: {name} is not a {service.prefix}… setting, nor one of {sorted(also)}")
    return problems


def models_file_keys(text: str) -> set[str]:
    """The environment variables a models file reads keys from (`api_key_env`)."""
    keys: set[str] = set()
    for model in yaml.safe_load(text)["models"]:
        for entry in (model, *model.get("deployments", [])):
            if entry.get("api_key_env"):
                keys.add(entry["api_key_env"])
    return keys


def models_file_of(source: str) -> tuple[str, str] | None:
    if source == "compose":
        return compose_models_file()
    if source == "k8s":
        return k8s_models_file()
    return None


ENV_SOURCES: dict[str, Callable[[Service], Env]] = {"compose": compose_env, "k8s": k8s_env}


def load_settings(service: Service, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str | None:
    """None when the service's settings load from exactly `env`; otherwise what they refused."""
    for name in list(os.environ):
        if name.upper().startswith(service.prefix):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        service.settings()  # type: ignore[call-arg]  # every value comes from the environment set above
    except ValidationError as exc:
        return str(exc)
    return None


# --- tests --------------------------------------------------------------------------------------------------------

service_names = pytest.mark.parametrize("name", list(SERVICES))


@pytest.mark.parametrize("source", list(ENV_SOURCES))
@service_names
def test_every_variable_is_a_setting_and_every_required_setting_is_given(
    source: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = SERVICES[name]
    env = ENV_SOURCES[source](service)
    models = models_file_of(source) if name == "llm-proxy" else None
    problems = misnamed(service, env, models_file_keys(models[1]) if models else set())
    problems += [
        f"{env.where}: {missing} (required, no default) is not given"
        for missing in service.required_given(env.values) - set(env.values)
    ]
    refused = load_settings(service, env.values, monkeypatch)
    if refused:
        problems.append(f"{env.where}: {service.name}'s settings refuse these values: {refused}")
    assert not problems, "\n".join(problems)


@service_names
def test_dockerfile_environment_is_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    service = SERVICES[name]
    image = dockerfile(service)
    env = Env(f"{image.path} ENV", image.env())
    problems = misnamed(service, env, PROCESS_ENV)
    own = {key: value for key, value in env.values.items() if key.startswith(service.prefix)}
    given = own | dict.fromkeys(service.required_given(own) - own.keys(), "test:test-key")
    refused = load_settings(service, given, monkeypatch)
    if refused:
        problems.append(f"{env.where}: {service.name}'s settings refuse these values: {refused}")
    assert not problems, "\n".join(problems)


@service_names
def test_every_port_is_the_settings_default(name: str) -> None:
    service = SERVICES[name]
    expected = service.port
    found: list[tuple[str, object]] = []

    entry = compose_service(name)
    for published in entry.get("ports", []):
        target = published["target"] if isinstance(published, dict) else interpolate(str(published)).rsplit(":", 1)[-1]
        found.append((f"docker-compose.yml services.{name}.ports {published!r}", str(target).split("/")[0]))
    found += [(f"docker-compose.yml services.{name}.expose", str(port)) for port in entry.get("expose", [])]
    if not found:
        found.append((f"docker-compose.yml services.{name}: no ports or expose", None))

    for env in (compose_env(service), k8s_env(service)):
        if f"{service.prefix}PORT" in env.values:
            found.append((f"{env.where} {service.prefix}PORT", env.values[f"{service.prefix}PORT"]))
    image = dockerfile(service)
    found.append((f"{image.path} ENV {service.prefix}PORT", image.env().get(f"{service.prefix}PORT")))
    exposed = [port.split("/")[0] for args in image.instructions("EXPOSE") for port in args.split()]
    found += [(f"{image.path} EXPOSE", port) for port in exposed] or [(f"{image.path}: no EXPOSE", None)]
    found += [(check.where, check.port) for check in (compose_health_check(service), dockerfile_health_check(service))]

    ports = container(service).get("ports", [])
    found += [(f"deploy/k8s Deployment {name} containerPort", port["containerPort"]) for port in ports] or [
        (f"deploy/k8s Deployment {name}: no container port", None)
    ]
    for port in k8s_object("Service", name)["spec"]["ports"]:
        found.append((f"deploy/k8s Service {name} port", port["port"]))
        found.append(
            (f"deploy/k8s Service {name} targetPort", container_port(service, port.get("targetPort", port["port"])))
        )
    probes = {key: value for key, value in container(service).items() if key.endswith("Probe")}
    found += [
        (f"deploy/k8s Deployment {name} {probe}", container_port(service, spec["httpGet"]["port"]))
        for probe, spec in probes.items()
    ]

    wrong = [f"{where}: {port}, not {expected}" for where, port in found if str(port) != str(expected)]
    assert not wrong, f"{name}'s Settings.port is {expected}:\n" + "\n".join(wrong)


@service_names
async def test_health_checks_and_probes_use_open_routes(name: str) -> None:
    service = SERVICES[name]
    probes = container(service)
    used: list[tuple[str, str | None, str]] = [
        (check.where, check.path, LIVENESS_PATH)
        for check in (compose_health_check(service), dockerfile_health_check(service))
    ]
    for probe, expected in (
        ("startupProbe", LIVENESS_PATH),
        ("livenessProbe", LIVENESS_PATH),
        ("readinessProbe", READINESS_PATH),
    ):
        path = probes[probe]["httpGet"]["path"] if probe in probes else None
        used.append((f"deploy/k8s Deployment {name} {probe}", path, expected))

    problems = [f"{where}: {path}, expected {expected}" for where, path, expected in used if path != expected]
    app = service.app()
    for path in sorted({LIVENESS_PATH, READINESS_PATH} | {path for _, path, _ in used if path}):
        if not serves(app, path):
            problems.append(f"{name} has no route GET {path} (its app's routes do not match it)")
            continue
        status = await status_without_key(app, path)
        if status in (401, 403, 404):
            problems.append(f"{name}: GET {path} without X-Internal-Auth answered {status}; probes send no key")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("call", CALLS, ids=lambda call: f"{call.caller}->{call.callee}")
def test_callers_reach_their_callee_by_name_and_port_with_its_own_key(call: Call) -> None:
    caller, callee = SERVICES[call.caller], SERVICES[call.callee]
    problems = []
    service_ports = {port["port"] for port in k8s_object("Service", callee.name)["spec"]["ports"]}
    for env, callee_env, ports in (
        (compose_env(caller), compose_env(callee), {callee.port}),
        (k8s_env(caller), k8s_env(callee), service_ports),
    ):
        url = urlsplit(env.values.get(call.url, ""))
        if url.hostname != callee.name or url.port not in ports:
            problems.append(f"{env.where}: {call.url}={url.geturl()!r}, expected http://{callee.name}:{min(ports)}")
        callee_key = f"{callee.prefix}INTERNAL_API_KEY"
        if env.origins.get(call.key) != callee_env.origins.get(callee_key):
            problems.append(
                f"{env.where}: {call.key} comes from {env.origins.get(call.key)!r}, but {callee.name}'s "
                f"{callee_key} from {callee_env.origins.get(callee_key)!r}"
            )
    depends = compose_service(caller.name).get("depends_on") or {}
    if not isinstance(depends, dict) or depends.get(callee.name, {}).get("condition") != "service_healthy":
        problems.append(f"docker-compose.yml services.{caller.name}.depends_on: {callee.name} with service_healthy")
    assert not problems, "\n".join(problems)


def test_compose_services_wait_for_healthy_dependencies() -> None:
    services: dict[str, Any] = compose()["services"]
    problems = []
    for name, entry in services.items():
        one_shot = entry.get("restart") == "no"
        if not one_shot and not entry.get("healthcheck"):
            problems.append(f"docker-compose.yml services.{name}: no healthcheck")
        depends = entry.get("depends_on") or {}
        if not isinstance(depends, dict):
            problems.append(f"docker-compose.yml services.{name}.depends_on: a list, so nothing waits for health")
            continue
        for target, condition in depends.items():
            wanted = "service_completed_successfully" if services[target].get("restart") == "no" else "service_healthy"
            if (condition or {}).get("condition") != wanted:
                problems.append(f"docker-compose.yml services.{name}.depends_on.{target}: condition {wanted} expected")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("source", list(ENV_SOURCES))
def test_llm_proxy_models_file_loads_and_serves_the_agents_model(source: str, tmp_path: Path) -> None:
    models = models_file_of(source)
    assert models is not None
    mounted_at, text = models
    proxy_env = ENV_SOURCES[source](SERVICES["llm-proxy"])
    problems = []
    if proxy_env.values.get("LLM_PROXY__MODELS_FILE") != mounted_at:
        problems.append(f"{proxy_env.where}: LLM_PROXY__MODELS_FILE should be {mounted_at}, where the file is mounted")
    path = tmp_path / "models.yaml"
    path.write_text(text, encoding="utf-8")
    create_llm_proxy(LLMProxySettings.model_validate({"internal_api_key": "test-key", "models_file": path}))
    names = [model["name"] for model in yaml.safe_load(text)["models"]]
    agent_env = ENV_SOURCES[source](SERVICES["agent-runtime"])
    model = agent_env.values.get("AGENT_RUNTIME__MODEL", str(AgentRuntimeSettings.model_fields["model"].default))
    if model not in names:
        problems.append(f"{agent_env.where}: AGENT_RUNTIME__MODEL={model!r} is not in llm-proxy's models {names}")
    problems += [
        f"{proxy_env.where}: {key} (a key the models file names) is not given"
        for key in sorted(models_file_keys(text) - set(proxy_env.values))
    ]
    assert not problems, "\n".join(problems)


@service_names
def test_k8s_objects_fit_the_deployment(name: str) -> None:
    service = SERVICES[name]
    deployment = k8s_object("Deployment", name)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    pod, own = pod_spec(service), container(service)
    problems = []

    def selects(selector: dict[str, str], where: str) -> None:
        if not selector or any(labels.get(key) != value for key, value in selector.items()):
            problems.append(f"{where}: selector {selector} does not match the pods' labels {labels}")

    selects(deployment["spec"]["selector"]["matchLabels"], f"deploy/k8s Deployment {name}")
    selects(k8s_object("Service", name)["spec"]["selector"], f"deploy/k8s Service {name}")
    selects(k8s_object("PodDisruptionBudget", name)["spec"]["selector"]["matchLabels"], f"deploy/k8s PDB {name}")
    hpa = k8s_object("HorizontalPodAutoscaler", name)["spec"]
    if (hpa["scaleTargetRef"]["kind"], hpa["scaleTargetRef"]["name"]) != ("Deployment", name):
        problems.append(f"deploy/k8s HorizontalPodAutoscaler {name}: scaleTargetRef {hpa['scaleTargetRef']}")
    if not 1 <= hpa.get("minReplicas", 1) <= hpa["maxReplicas"]:
        problems.append(
            f"deploy/k8s HorizontalPodAutoscaler {name}: replicas {hpa.get('minReplicas')}..{hpa['maxReplicas']}"
        )

    security = pod.get("securityContext", {})
    if security.get("runAsNonRoot") is not True or not security.get("runAsUser"):
        problems.append(f"deploy/k8s Deployment {name}: the pod must run as a non-root, numbered user")
    container_security = own.get("securityContext", {})
    for key, wanted in (("readOnlyRootFilesystem", True), ("allowPrivilegeEscalation", False)):
        if container_security.get(key) is not wanted:
            problems.append(f"deploy/k8s Deployment {name}: container securityContext.{key} should be {wanted}")
    for kind in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(own.get("resources", {}).get(kind, {})):
            problems.append(f"deploy/k8s Deployment {name}: resources.{kind} needs cpu and memory")
    assert not problems, "\n".join(problems)


def test_kustomization_lists_every_manifest_and_the_secret_holds_placeholders() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    files = {path.name for path in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files, f"kustomization.yaml resources {kustomization['resources']}"
    for (kind, name), document in manifests().items():
        if kind == "Secret":
            real = [key for key, value in (document.get("stringData") or {}).items() if "CHANGE-ME" not in str(value)]
            assert not real, f"deploy/k8s Secret {name}: {real} must stay CHANGE-ME placeholders in the repository"


@service_names
def test_dockerfile_builds_a_slim_non_root_runtime(name: str) -> None:
    service = SERVICES[name]
    image = dockerfile(service)
    problems = []
    if len(image.stages) < 2:
        problems.append(f"{image.path}: a builder stage and a runtime stage expected")
    base = _VARIABLE.sub(lambda m: image.args.get(m["name"], ""), image.runtime[0][1].split()[0])
    base = re.sub(r"\$(\w+)", lambda m: image.args.get(m[1], ""), base)
    if base != RUNTIME_IMAGE:
        problems.append(f"{image.path}: the runtime stage starts FROM {base!r}, not {RUNTIME_IMAGE}")
    if not any("--from=builder" in args and "/srv/.venv" in args for args in image.instructions("COPY")):
        problems.append(f"{image.path}: the runtime stage should copy the virtual environment from the builder")
    users = image.instructions("USER")
    uid = users[-1].split(":")[0] if users else ""
    if not uid.isdigit() or uid == "0":
        problems.append(f"{image.path}: USER should be a numbered non-root user, found {users}")
    commands = image.instructions("CMD")
    if not commands or exec_form(commands[-1]) != ["python", "-m", service.module]:
        problems.append(f"{image.path}: CMD should be python -m {service.module}, found {commands}")
    if image.env().get(f"{service.prefix}HOST") != "0.0.0.0":
        problems.append(f"{image.path}: ENV {service.prefix}HOST=0.0.0.0 expected (the default listens on loopback)")
    assert not problems, "\n".join(problems)
