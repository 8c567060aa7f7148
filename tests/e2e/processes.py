"""A service as a real process on a fixed loopback port, for the end-to-end tests that kill, restart or read the
logs of real processes. Its environment is the test's own minus every service setting, plus `env`; it runs in
`folder` (so no `.env` of the checkout is read) and writes its output to `folder/<name>.log`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from codelab_common.testing import wait_for_health

SERVICE_PREFIXES = ("LLM_PROXY__", "AGENT_RUNTIME__", "GATEWAY__")


def service_env(prefix: str, common: dict[str, str], **values: object) -> dict[str, str]:
    """A service's environment: `common` and `values` (setting names, any case) under its prefix."""
    merged = {**common, **{key.upper(): str(value) for key, value in values.items()}}
    return {prefix + key: value for key, value in merged.items()}


@dataclass
class Service:
    """One service process on a fixed loopback port; started again on the same port after a kill."""

    name: str
    module: str
    port: int
    env: dict[str, str]
    folder: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 60.0) -> None:
        base = {key: value for key, value in os.environ.items() if not key.startswith(SERVICE_PREFIXES)}
        with self.log.open("ab") as sink:
            sink.write(f"==== start {self.name} on port {self.port} ====\n".encode())
            sink.flush()
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=sink,
                stderr=asyncio.subprocess.STDOUT,
                env={**base, **self.env},
                cwd=self.folder,  # no `.env` of the checkout is read
                start_new_session=True,
            )
        health = asyncio.create_task(wait_for_health(self.url, timeout))
        exited = asyncio.create_task(self.process.wait())
        try:
            await asyncio.wait({health, exited}, return_when=asyncio.FIRST_COMPLETED)
            if exited.done():
                raise RuntimeError(f"{self.name} exited with {exited.result()} before it was up:\n{self.tail()}")
            health.result()
        except BaseException:
            await self.kill()
            raise
        finally:
            health.cancel()
            exited.cancel()

    async def kill(self) -> None:
        """SIGKILL: no shutdown of any kind, as when a machine or container dies."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 15)
        except TimeoutError:
            await self.kill()

    def tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"
