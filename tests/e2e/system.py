"""The whole system as real processes: `codelab up` (python -m codelab_client up) on free loopback ports.

`codelab up` starts llm-proxy, agent-runtime and gateway (and the local model unless `--no-model`) as child
processes with their environment wired, exactly as a user runs it, so these tests cover the launcher too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from codelab_common.testing import free_port, wait_for_health


@dataclass
class RunningSystem:
    process: asyncio.subprocess.Process
    data_dir: Path
    output: Path
    """Where `codelab up` itself prints (its progress lines)."""
    gateway_port: int
    ports: dict[str, int]

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}"

    def logs(self) -> str:
        """`codelab up`'s output and every service log, for a failing test's report."""
        parts = [f"---- codelab up ----\n{_read(self.output)}"]
        for log in sorted((self.data_dir / "logs").glob("*.log")):
            parts.append(f"---- {log.name} ----\n{_read(log)}")
        return "\n".join(parts)

    async def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM `codelab up` (as Ctrl-C would) and wait for it; kill its whole group if it hangs."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()
            raise


async def _all_healthy(ports: list[int], timeout: float) -> None:
    await asyncio.gather(*(wait_for_health(f"http://127.0.0.1:{port}", timeout) for port in ports))


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return "(none)"


START_ATTEMPTS = 3
"""A free port can be taken by another process between `free_port()` and the service's bind; then retry."""


@asynccontextmanager
async def codelab_up(
    tmp_path: Path,
    *args: str,
    env: dict[str, str] | None = None,
    start_timeout: float = 90.0,
    with_model: bool = False,
) -> AsyncIterator[RunningSystem]:
    """Run `codelab up ARGS` on free ports until every service is healthy; stop it (and print its logs) after."""
    for attempt in range(1, START_ATTEMPTS + 1):
        system = await _start(tmp_path / f"attempt-{attempt}", args, env, start_timeout, with_model)
        if system.process.returncode is None:
            break
        print(system.logs())
        if attempt == START_ATTEMPTS or "already in use" not in system.logs():
            raise RuntimeError(f"codelab up exited with status {system.process.returncode} before it was up")
    try:
        yield system
    finally:
        try:
            await system.stop()
        finally:
            print(system.logs())


async def _start(
    folder: Path, args: tuple[str, ...], env: dict[str, str] | None, start_timeout: float, with_model: bool
) -> RunningSystem:
    """Start `codelab up` and wait until it is healthy or has exited (the caller tells which)."""
    os.makedirs(folder)
    ports = {name: free_port() for name in ("gateway", "agent-runtime", "llm-proxy", "model")}
    data_dir = folder / "data"
    output = folder / "codelab-up.out"
    argv = [sys.executable, "-m", "codelab_client", "up", "--data-dir", str(data_dir), *args]
    argv += ["--start-timeout", str(start_timeout)]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    with output.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=sink,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200", **(env or {})},
            start_new_session=True,
        )
    system = RunningSystem(process, data_dir, output, ports["gateway"], ports)
    services = ["gateway", "agent-runtime", "llm-proxy", *(["model"] if with_model else [])]
    health = asyncio.create_task(_all_healthy([ports[name] for name in services], start_timeout))
    exited = asyncio.create_task(process.wait())
    try:
        await asyncio.wait({health, exited}, return_when=asyncio.FIRST_COMPLETED)
        if health.done() and process.returncode is None:
            health.result()
    except BaseException:
        await system.stop()
        print(system.logs())
        raise
    finally:
        health.cancel()
        exited.cancel()
    return system
