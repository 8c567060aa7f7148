"""Runs one program and sees that nothing it started outlives it (Linux).

`process.run_process` starts `python -I -S reaper.py PROGRAM ARGS...` instead of the program itself. Killing the
process group on a timeout is not enough: a command can leave it (`setsid`, a double fork, `nohup ... &`) and keep
running after the tool returned, unseen by the user who approved it. So the wrapper makes itself a child subreaper
(`prctl(PR_SET_CHILD_SUBREAPER)`): a process that loses its parent is re-parented to the wrapper instead of to
init, however it detached. When the program ends, the wrapper SIGKILLs its children, again and again until none
are left (the children of a killed one come to it next), reaps them, and exits with the program's status, or dies
of the signal that killed the program, so the caller sees what the program alone would have given.

A SIGTERM, SIGINT or SIGHUP (the client's timeout or cancel signals the whole process group, so the program has
it too) gives the program `TERM_GRACE_S` to end on its own, shorter than the client's own grace before SIGKILL;
then everything left is killed the same way, and the wrapper again ends as the program did (by SIGKILL when the
grace ran out).

It runs as a script, outside the package and with `-I -S`, and imports only small standard modules (not even
`typing`, which would add milliseconds to every command), so it starts fast.
It writes nothing to stdout or stderr unless the program cannot be started (then it exits 127, as a shell does).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
TERM_GRACE_S = 1.0
"""How long the program gets between the stop signal and SIGKILL; below process.KILL_GRACE_S."""
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
WAITED = STOP_SIGNALS | {signal.SIGCHLD}
RESTORED = (signal.SIGPIPE, signal.SIGXFSZ)
"""Python ignores these; the program gets them back at their default, as `subprocess` gives them."""


def main(argv: list[str]) -> None:
    if not argv:
        os.write(2, b"usage: reaper.py PROGRAM [ARGS...]\n")
        os._exit(2)
    _become_subreaper()
    # Blocked before the program starts, so no signal is missed; taken one at a time with sigtimedwait.
    signal.pthread_sigmask(signal.SIG_BLOCK, WAITED)
    try:
        program = os.posix_spawnp(argv[0], argv, os.environ, setsigmask=(), setsigdef=RESTORED)
    except OSError as exc:
        os.write(2, f"{argv[0]}: {exc.strerror or exc}\n".encode(errors="replace"))
        os._exit(127)

    status: int | None = None
    deadline = float("inf")
    while status is None and time.monotonic() < deadline:
        got = signal.sigtimedwait(WAITED, min(1.0, max(0.0, deadline - time.monotonic())))
        if got is not None and got.si_signo in STOP_SIGNALS and deadline == float("inf"):
            deadline = time.monotonic() + TERM_GRACE_S
        status = _reap(program)
    killed = kill_descendants(program)
    status = killed if status is None else status
    assert status is not None
    if os.WIFSIGNALED(status):
        _die(os.WTERMSIG(status))
    os._exit(os.waitstatus_to_exitcode(status))


def kill_descendants(program: int) -> int | None:
    """SIGKILL every child and reap it, until none is left: the orphans of each killed one come here next.

    Returns the program's wait status when it was among them (still running after a stop signal's grace)."""
    status = None
    while children := _children():
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            try:
                _, code = os.waitpid(pid, 0)
            except ChildProcessError:
                continue
            if pid == program:
                status = code
    return status


def _become_subreaper() -> None:
    """Best effort: without it (a kernel before 3.4), detached processes are not found, the rest still is."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _reap(program: int) -> int | None:
    """Reaps every child that ended (orphans that died are this process's zombies to collect); the program's wait
    status once it is among them."""
    status = None
    while True:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == program:
            status = code


def _children() -> list[int]:
    """The pids whose parent is this process: `/proc/self/task/<tid>/children` (one read), else a scan of
    `/proc/*/stat` for kernels built without it."""
    pid = os.getpid()
    try:
        with open(f"/proc/self/task/{pid}/children") as listed:
            return [int(child) for child in listed.read().split()]
    except FileNotFoundError:
        pass
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def _die(sig: int) -> None:
    """End by `sig`, as the program did, without a core file of the wrapper."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
        signal.signal(sig, signal.SIG_DFL)
    except (OSError, ValueError):  # SIGKILL has no handler to reset
        pass
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
    os.kill(os.getpid(), sig)
    os._exit(128 + sig)


if __name__ == "__main__":
    main(sys.argv[1:])
