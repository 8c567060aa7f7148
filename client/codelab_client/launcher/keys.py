"""The internal keys `codelab up` wires between the services, the client token, and where they come from.

Each key is taken from the environment, else from `.env` in the working folder, else from the keys file in the
data folder; a key found nowhere is generated and added to that file (mode 0600), so the keys survive restarts and
`codelab env` can print them for the shell (the seed's `curl` examples read them from there).

`CODELAB_TOKEN` is the terminal client's token: a gateway started by `codelab up` accepts it as principal `local`
when client authentication is on (`GATEWAY__CLIENT_AUTH=token`) and no `GATEWAY__CLIENT_TOKENS` is given, and
`codelab chat` / `codelab run` started in the same folder send it, so nobody copies it anywhere.
"""

from __future__ import annotations

import os
import secrets
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

KEYS_FILE = "keys.env"
LLM_PROXY_KEY = "LLM_PROXY__INTERNAL_API_KEY"
AGENT_RUNTIME_KEY = "AGENT_RUNTIME__INTERNAL_API_KEY"
GATEWAY_KEY = "GATEWAY__INTERNAL_API_KEY"
CLIENT_TOKEN = "CODELAB_TOKEN"
KEY_NAMES = (LLM_PROXY_KEY, AGENT_RUNTIME_KEY, GATEWAY_KEY, CLIENT_TOKEN)
CLIENT_TOKENS_SETTING = "GATEWAY__CLIENT_TOKENS"
LOCAL_PRINCIPAL = "local"


@dataclass(frozen=True, slots=True)
class Keys:
    values: dict[str, str]
    """Every name of KEY_NAMES and its key."""
    generated: tuple[str, ...]
    """The names whose keys were made just now."""

    def __getitem__(self, name: str) -> str:
        return self.values[name]

    def exports(self) -> str:
        """Shell lines that export every key (`eval "$(codelab env)"`)."""
        return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in self.values.items())


def keys_path(data_dir: Path) -> Path:
    return data_dir / KEYS_FILE


def resolve_keys(data_dir: Path, environ: Mapping[str, str] | None = None, dotenv: Path = Path(".env")) -> Keys:
    """The keys to use, generating and storing those that are given nowhere."""
    environ = os.environ if environ is None else environ
    from_dotenv = _read(dotenv)
    path = keys_path(data_dir)
    stored = _read(path)
    values: dict[str, str] = {}
    generated: list[str] = []
    for name in KEY_NAMES:
        value = (environ.get(name) or from_dotenv.get(name) or stored.get(name) or "").strip()
        if not value:
            value = stored[name] = secrets.token_urlsafe(32)
            generated.append(name)
        values[name] = value
    if generated:
        _write(path, stored)
    return Keys(values, tuple(generated))


def stored_token(data_dir: Path) -> str | None:
    """The client token `codelab up` keeps in `data_dir`, if there is one (none is made here)."""
    return _read(keys_path(data_dir)).get(CLIENT_TOKEN)


def configured(name: str, environ: Mapping[str, str] | None = None, dotenv: Path = Path(".env")) -> str | None:
    """What the operator set `name` to (environment, else `.env`), so the launcher neither overrides it nor
    guesses it."""
    environ = os.environ if environ is None else environ
    return environ.get(name) or _read(dotenv).get(name) or None


def _read(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    return {name: value for name, value in dotenv_values(path).items() if value}


def _write(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{name}={value}\n" for name, value in values.items())
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    path.chmod(0o600)
