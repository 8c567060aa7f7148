"""Starting, watching and stopping the child processes of `codelab up`.

All services start at once: none calls another while booting, and the local model's load dominates anyway.
Each child runs in its own session (process group), so Ctrl-C reaches only the launcher, which then stops the
children in reverse start order (SIGTERM to the whole group, SIGKILL after a grace period). Each child's stdout
and stderr go to `<data-dir>/logs/<service>.log`.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from codelab_client.launcher.plan import ServiceSpec

STOP_GRACE_S = 10.0
POLL_S = 0.2
RESTART_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0)
"""Wait before the 1st, 2nd, … restart of a service within `RESTART_WINDOW_S`."""
RESTART_WINDOW_S = 120.0
MAX_RESTARTS = len(RESTART_DELAYS_S)
"""A service that exits this often within the window is failing for good: `codelab up` stops everything."""


class StartupError(Exception):
    """A service could not start: its port is taken, it exited, or it was not healthy in time."""


@dataclass
class Child:
    spec: ServiceSpec
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]
    log_offset: int
    """Where this run's output starts in the (appended) log file."""
    started: float
    announced: bool = False
    """Reported healthy since it was (re)started."""


def port_in_use(host: str, port: int) -> bool:
    """Whether something listens on `host:port` (a socket in TIME_WAIT does not count, as for uvicorn)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    def __init__(
        self, specs: list[ServiceSpec], log_dir: Path, *, report: Callable[[str], None], host: str = "127.0.0.1"
    ) -> None:
        self.specs = specs
        self.log_dir = log_dir
        self.report = report
        self.host = host
        self.children: list[Child] = []
        self.stopping = False
        self._restarts: dict[str, list[float]] = {}
        """Per service, when it was restarted (within the window)."""

    def request_stop(self, *_: object) -> None:
        """Signal handler: ask the main loop to stop everything."""
        self.stopping = True

    def check_ports(self) -> None:
        taken = [f"{spec.name} port {spec.port}" for spec in self.specs if port_in_use(self.host, spec.port)]
        if taken:
            raise StartupError(
                f"already in use on {self.host}: {', '.join(taken)}. Stop what listens there "
                "(an earlier `codelab up`?) or choose other ports (see `codelab up --help`)."
            )

    def start_all(self, timeout: float) -> None:
        """Start every service at once (none needs another to boot) and wait until all are healthy."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.specs:
            self.children.append(self._spawn(spec))
        waiting = list(self.children)
        while waiting:
            for child in list(waiting):
                if self._ready(child, timeout):
                    waiting.remove(child)
                    child.announced = True
                    elapsed = time.monotonic() - child.started
                    self.report(f"{child.spec.name} ready on port {child.spec.port} ({elapsed:.1f} s)")
            if waiting:
                time.sleep(POLL_S)

    def _spawn(self, spec: ServiceSpec) -> Child:
        log_path = self.log_dir / f"{spec.name}.log"
        log_file = log_path.open("ab")
        log_file.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {spec.name}\n".encode())
        log_file.flush()
        offset = log_file.tell()
        process = subprocess.Popen(
            spec.argv,
            env={**os.environ, **spec.env},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        return Child(spec, process, log_path, log_file, offset, time.monotonic())

    def _ready(self, child: Child, timeout: float) -> bool:
        """Whether `child` is healthy yet; raises when it exited, ran out of time, or a stop was requested."""
        if self.stopping:
            raise StartupError("stopped while starting")
        code = child.process.poll()
        if code is not None:
            raise StartupError(
                f"{child.spec.name} exited with status {code} while starting; last lines of "
                f"{child.log_path}:\n{tail(child.log_path)}"
            )
        if healthy(child.spec.health_url) or self._printed_ready(child):
            return True
        if time.monotonic() - child.started > timeout:
            raise StartupError(
                f"{child.spec.name} was not healthy after {timeout:.0f} s ({child.spec.health_url}); "
                f"last lines of {child.log_path}:\n{tail(child.log_path)}"
            )
        return False

    def _printed_ready(self, child: Child) -> bool:
        if child.spec.ready_line is None:
            return False
        try:
            with child.log_path.open("rb") as fh:
                fh.seek(max(child.log_offset - 1, 0))
                return ("\n" + child.spec.ready_line).encode() in fh.read()
        except OSError:
            return False

    def watch(self) -> Child | None:
        """Block until a stop is requested (returns None). A child that exits on its own is restarted after a
        backoff while the others keep running; one that keeps exiting (`MAX_RESTARTS` within `RESTART_WINDOW_S`)
        is returned."""
        due: dict[int, float] = {}
        """Index in `children` of an exited child → when to start it again."""
        while not self.stopping:
            now = time.monotonic()
            for index, child in enumerate(self.children):
                if index in due:
                    if now >= due[index]:
                        del due[index]
                        self.children[index] = self._respawn(child)
                    continue
                code = child.process.poll()
                if code is None:
                    if not child.announced and healthy(child.spec.health_url):
                        child.announced = True
                        self.report(f"{child.spec.name} is back on port {child.spec.port}")
                    continue
                recent = [at for at in self._restarts.get(child.spec.name, []) if now - at < RESTART_WINDOW_S]
                if len(recent) >= MAX_RESTARTS:
                    return child
                delay = RESTART_DELAYS_S[len(recent)]
                self._restarts[child.spec.name] = [*recent, now]
                self.report(
                    f"{child.spec.name} exited with status {code}; restarting it in {delay:.0f} s "
                    f"(the others keep running; see {child.log_path})"
                )
                due[index] = now + delay
            time.sleep(POLL_S)
        return None

    def _respawn(self, child: Child) -> Child:
        self._signal(child, signal.SIGKILL)  # whatever it left behind in its group
        child.log_file.close()
        return self._spawn(child.spec)

    def stop_all(self) -> None:
        """SIGTERM every child group (last started first), then SIGKILL what is still running after the grace."""
        for child in reversed(self.children):
            self._signal(child, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.report(f"{child.spec.name} did not stop within {STOP_GRACE_S:.0f} s; killing it")
                self._signal(child, signal.SIGKILL)
                child.process.wait()
            self._signal(child, signal.SIGKILL)  # whatever it started and left behind in its group
            child.log_file.close()
        self.children.clear()

    @staticmethod
    def _signal(child: Child, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, sig)


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the launcher dies, however it dies (SIGKILL, a closed terminal),
    so no service is left holding its port. Linux only; elsewhere a no-op."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
