"""Every tool keeps to the workspace against a hostile workspace or model: `..`, absolute and home paths, symlinks
leading out (also swapped in while a tool runs), hard links, named pipes, sockets and devices, and processes that
detach from a command are all refused or stopped."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import stat
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codelab_client.tools import ToolExecutor, process
from codelab_client.tools import workspace as workspace_module

ESCAPES = ["../outside/secret.txt", "sub/../../outside/secret.txt", "..", "../outside"]


def _path_calls(path: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("read_file", {"path": path}),
        ("write_file", {"path": path, "content": "pwned"}),
        ("edit_file", {"path": path, "old_text": "TOP-SECRET", "new_text": "pwned"}),
        ("list_files", {"path": path}),
        ("search_in_project", {"query": "SECRET", "path": path}),
        ("create_directory", {"path": f"{path}/newdir"}),
        ("git.diff", {"path": path}),
        ("run_command", {"command": "cat secret.txt", "cwd": path}),
        ("apply_patch", {"patch": f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-TOP-SECRET\n+pwned\n"}),
    ]


@pytest.mark.parametrize("path", ESCAPES)
async def test_dotdot_escapes_are_refused_by_every_tool(executor: ToolExecutor, outside: Path, path: str) -> None:
    for tool, arguments in _path_calls(path):
        outcome = await executor.execute(tool, arguments)
        assert outcome.error is not None and outcome.error.startswith("[path_outside_workspace]"), (tool, outcome)
    assert (outside / "secret.txt").read_text() == "TOP-SECRET\n"
    assert sorted(os.listdir(outside)) == ["secret.txt"]


async def test_absolute_paths_are_refused_even_inside_the_workspace(
    executor: ToolExecutor, workspace: Path, outside: Path
) -> None:
    (workspace / "a.txt").write_text("inside\n")
    for path in (str(outside / "secret.txt"), str(workspace / "a.txt"), "/etc/passwd"):
        for tool, arguments in _path_calls(path):
            outcome = await executor.execute(tool, arguments)
            assert outcome.error is not None and outcome.error.startswith("[path_outside_workspace]"), (tool, path)
    assert (workspace / "a.txt").read_text() == "inside\n"


async def test_symlinks_leading_out_are_refused(executor: ToolExecutor, workspace: Path, outside: Path) -> None:
    (workspace / "file_link").symlink_to(outside / "secret.txt")
    (workspace / "dir_link").symlink_to(outside)
    (workspace / "dangling").symlink_to(outside / "not-yet.txt")
    for path in ("file_link", "dir_link", "dir_link/secret.txt", "dir_link/new.txt", "dangling"):
        for tool, arguments in _path_calls(path):
            outcome = await executor.execute(tool, arguments)
            assert outcome.error is not None and outcome.error.startswith("[path_outside_workspace]"), (tool, path)
    assert (outside / "secret.txt").read_text() == "TOP-SECRET\n"
    assert not (outside / "not-yet.txt").exists()
    assert not (outside / "new.txt").exists()


async def test_symlinks_inside_the_workspace_work(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "real").mkdir()
    (workspace / "real" / "code.py").write_text("x = 1\n")
    (workspace / "alias").symlink_to(workspace / "real")
    read = await executor.execute("read_file", {"path": "alias/code.py"})
    assert read.result is not None and read.result["content"] == "x = 1\n"
    written = await executor.execute("write_file", {"path": "alias/new.py", "content": "y = 2\n"})
    assert written.ok and (workspace / "real" / "new.py").read_text() == "y = 2\n"


async def test_dotdot_that_stays_inside_is_fine(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "a").mkdir()
    (workspace / "b.txt").write_text("bee\n")
    outcome = await executor.execute("read_file", {"path": "a/../b.txt"})
    assert outcome.result is not None and outcome.result["content"] == "bee\n"


async def test_recursive_listing_and_search_do_not_follow_links_out(
    executor: ToolExecutor, workspace: Path, outside: Path
) -> None:
    (workspace / "dir_link").symlink_to(outside)
    (workspace / "file_link").symlink_to(outside / "secret.txt")
    (workspace / "own.txt").write_text("mine\n")
    listing = await executor.execute("list_files", {"path": ".", "recursive": True})
    assert listing.result is not None
    paths = {item["path"]: item["type"] for item in listing.result["items"]}
    assert paths == {"dir_link": "symlink", "file_link": "symlink", "own.txt": "file"}
    search = await executor.execute("search_in_project", {"query": "SECRET"})
    assert search.result is not None and search.result["matches"] == []


async def test_a_workspace_reached_through_a_symlink_still_confines(tmp_path: Path, outside: Path) -> None:
    real = tmp_path / "real-ws"
    real.mkdir()
    (real / "in.txt").write_text("in\n")
    link = tmp_path / "ws-link"
    link.symlink_to(real)
    executor = ToolExecutor(link)
    ok = await executor.execute("read_file", {"path": "in.txt"})
    assert ok.ok
    refused = await executor.execute("read_file", {"path": "../outside/secret.txt"})
    assert refused.error is not None and refused.error.startswith("[path_outside_workspace]")
    assert executor.workspace.root == real


# --- A hostile workspace: home paths, hard links, races, special files, detached processes ---------------------
#
# The git configuration of a cloned repository (fsmonitor, filter and textconv commands) is the other way a
# workspace could make a tool run something: see test_client_tool_git.py,
# test_git_diff_runs_no_command_the_repository_configures.

SECRET = "TOP-SECRET"
CONTENT_TOOLS = ("read_file", "write_file", "edit_file", "apply_patch")
"""The tools that read or write a given file's content (search_in_project reads many, and skips what it refuses)."""


def _content_calls(path: str) -> list[tuple[str, dict[str, Any]]]:
    return [(tool, arguments) for tool, arguments in _path_calls(path) if tool in CONTENT_TOOLS]


def _revealed(outcome: Any) -> bool:
    return SECRET in repr(outcome)


@pytest.fixture(params=["proc", "walk"])
def check(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways files are opened: as on Linux (O_PATH, the no-follow walk, then the /proc/self/fd check) and as
    elsewhere (O_NONBLOCK, the walk alone)."""
    if request.param == "proc" and not workspace_module.USE_PROC_FD:
        pytest.skip("no /proc/self/fd here")
    monkeypatch.setattr(workspace_module, "USE_PROC_FD", request.param == "proc")
    return str(request.param)


@pytest.mark.parametrize("path", ["~", "~/secret.txt", "~/.ssh/id_rsa"])
async def test_home_paths_are_refused(executor: ToolExecutor, workspace: Path, path: str) -> None:
    for tool, arguments in _path_calls(path):
        outcome = await executor.execute(tool, arguments)
        assert outcome.error is not None and outcome.error.startswith("[path_outside_workspace]"), (tool, outcome)
    assert os.listdir(workspace) == []


async def test_a_hard_link_to_an_outside_file_is_neither_read_nor_written(
    executor: ToolExecutor, workspace: Path, outside: Path, check: str
) -> None:
    os.link(outside / "secret.txt", workspace / "linked.txt")
    for tool, arguments in _content_calls("linked.txt"):
        outcome = await executor.execute(tool, arguments)
        assert outcome.error is not None and outcome.error.startswith("[hard_linked] linked.txt has 2 names"), tool
        assert not _revealed(outcome)
    search = await executor.execute("search_in_project", {"query": SECRET})
    assert search.result is not None and search.result["matches"] == []
    listing = await executor.execute("list_files", {"path": "."})
    assert listing.result is not None and [i["name"] for i in listing.result["items"]] == ["linked.txt"]
    assert (outside / "secret.txt").read_text() == "TOP-SECRET\n"
    assert os.stat(outside / "secret.txt").st_nlink == 2, "still the same file: write_file did not replace it"


async def test_a_hard_link_between_two_inside_names_is_refused_too(executor: ToolExecutor, workspace: Path) -> None:
    """Nothing tells where a file's other names are, so the rule is by the count, not by the place."""
    (workspace / "a.txt").write_text("shared\n")
    os.link(workspace / "a.txt", workspace / "b.txt")
    outcome = await executor.execute("read_file", {"path": "a.txt"})
    assert outcome.error is not None and outcome.error.startswith("[hard_linked]")


_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> None:
    """Swap two directory entries in one step (renameat2 RENAME_EXCHANGE), so the path never goes missing."""
    if _libc.renameat2(AT_FDCWD, bytes(a), AT_FDCWD, bytes(b), RENAME_EXCHANGE) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


class Flipper:
    """A thread that keeps turning the entry at `path` (a file or a folder inside the workspace) into a symlink to
    `outside` and back, as fast as it can, while the test calls a tool on it: the path `resolve` checked is no
    longer the one a plain `open` follows."""

    def __init__(self, path: Path, outside: Path) -> None:
        self.path = path
        self.link = path.with_name(f".{path.name}.link")
        self.link.symlink_to(outside)
        try:
            _exchange(self.path, self.link)
            _exchange(self.path, self.link)
        except (OSError, AttributeError) as exc:
            pytest.skip(f"no renameat2(RENAME_EXCHANGE) here: {exc}")
        self.flips = 0
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                _exchange(self.path, self.link)
                self.flips += 1
        except BaseException as exc:  # reported by __exit__, in the test
            self.failure = exc

    def __enter__(self) -> Flipper:
        self._previous = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)  # hand the GIL over often, so the swaps land between a tool's steps
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        sys.setswitchinterval(self._previous)
        if self.flips % 2:
            _exchange(self.path, self.link)
        assert self.failure is None, f"the flipper stopped: {self.failure!r}"


def _swap_after_resolve(executor: ToolExecutor, monkeypatch: pytest.MonkeyPatch, entry: Path, link: Path) -> None:
    """The attacker wins the race every time: the first `resolve` of each tool call returns its checked path, then
    `entry` and `link` (a symlink leading out) trade places, before the tool opens anything."""
    resolve = executor.workspace.resolve
    armed = [True]

    def resolve_then_swap(path: str) -> Path:
        real = resolve(path)
        if armed[0]:
            armed[0] = False
            _exchange(entry, link)
        return real

    def rearm() -> None:
        if not armed[0]:
            _exchange(entry, link)
        armed[0] = True

    monkeypatch.setattr(executor.workspace, "resolve", resolve_then_swap)
    monkeypatch.setattr(executor, "rearm", rearm, raising=False)


@pytest.mark.parametrize("through", ["file", "folder"])
async def test_a_symlink_swapped_in_after_the_check_is_refused_by_every_tool(
    executor: ToolExecutor, workspace: Path, outside: Path, monkeypatch: pytest.MonkeyPatch, check: str, through: str
) -> None:
    """Deterministic form of the race below: each tool is called on `real/secret.txt` (or `real`), which its path
    check sees inside, and meets a symlink to the outside in its place when it opens it."""
    (workspace / "real").mkdir()
    (workspace / "real" / "secret.txt").write_text("harmless TOP\n")
    entry = workspace / "real" / "secret.txt" if through == "file" else workspace / "real"
    link = entry.with_name(f".{entry.name}.link")
    link.symlink_to(outside / "secret.txt" if through == "file" else outside)
    try:
        _exchange(entry, link)
        _exchange(entry, link)
    except (OSError, AttributeError) as exc:
        pytest.skip(f"no renameat2(RENAME_EXCHANGE) here: {exc}")
    _swap_after_resolve(executor, monkeypatch, entry, link)
    beside = "refused" if through == "folder" else "fine"
    """What becomes of calls on other paths in `real`: the folder swapped, they are refused too."""
    calls = [
        *((tool, arguments, "refused") for tool, arguments in _content_calls("real/secret.txt")),
        ("write_file", {"path": "real/new.txt", "content": "pwned"}, beside),
        ("create_directory", {"path": "real/newdir"}, beside),
        ("list_files", {"path": "real"}, beside),
        # It skips what it may not open; the file swapped away still matches, under its new name.
        ("search_in_project", {"query": "TOP", "path": "real"}, "no matches" if through == "folder" else "fine"),
    ]
    for tool, arguments, expected in calls:
        outcome = await executor.execute(tool, arguments)
        executor.rearm()  # type: ignore[attr-defined]
        assert not _revealed(outcome), (tool, outcome)
        if expected == "refused":
            assert outcome.error is not None, (tool, outcome)
            assert outcome.error.startswith(("[path_changed]", "[path_outside_workspace]")), (tool, outcome)
        elif expected == "no matches":
            assert outcome.result is not None and outcome.result["matches"] == [], outcome
        else:
            assert outcome.ok, (tool, outcome)
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "TOP-SECRET\n"


@pytest.mark.skipif(not workspace_module.USE_PROC_FD, reason="the check of /proc/self/fd is Linux's")
async def test_a_folder_moved_out_while_the_walk_holds_it_is_refused(
    executor: ToolExecutor, workspace: Path, outside: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk goes on from a folder's descriptor: moved out of the workspace (with a secret put in it) right after
    it was opened, the file reached through it is outside, and the /proc/self/fd check says so."""
    (workspace / "real").mkdir()
    (workspace / "real" / "secret.txt").write_text("harmless\n")
    open_in = workspace_module._open_in

    def open_then_move_out(folder: int, name: str, flags: int, shown: str) -> int:
        fd = open_in(folder, name, flags, shown)
        if name == "real":
            os.rename(workspace / "real", outside / "moved")
            os.replace(outside / "secret.txt", outside / "moved" / "secret.txt")
        return fd

    monkeypatch.setattr(workspace_module, "_open_in", open_then_move_out)
    outcome = await executor.execute("read_file", {"path": "real/secret.txt"})
    assert outcome.error is not None and outcome.error.startswith("[path_outside_workspace]"), outcome
    assert not _revealed(outcome)


SWAP_READS = 3000


@pytest.mark.parametrize("through", ["file", "folder"])
async def test_a_symlink_swapped_in_during_read_file_never_leaks_the_outside_file(
    executor: ToolExecutor, workspace: Path, outside: Path, check: str, through: str
) -> None:
    """`file`: the file itself keeps turning into a symlink to the secret (O_NOFOLLOW, and the check after the
    open). `folder`: a folder on the path keeps turning into a symlink to the outside folder (only the check after
    the open catches that)."""
    (workspace / "real").mkdir()
    (workspace / "real" / "secret.txt").write_text("harmless\n")
    if through == "file":
        flipper = Flipper(workspace / "real" / "secret.txt", outside / "secret.txt")
    else:
        flipper = Flipper(workspace / "real", outside)
    outcomes: Counter[str] = Counter()
    with flipper:
        for _ in range(SWAP_READS):
            outcome = await executor.execute("read_file", {"path": "real/secret.txt"})
            if _revealed(outcome):
                outcomes["leaked"] += 1
            elif outcome.result is not None:
                assert outcome.result["content"] == "harmless\n"
                outcomes["inside"] += 1
            else:
                assert outcome.error is not None
                outcomes[outcome.error.split("]")[0] + "]"] += 1
    assert outcomes["leaked"] == 0, outcomes
    assert outcomes["inside"] > 0 and flipper.flips > SWAP_READS // 10, (outcomes, flipper.flips)


async def test_a_folder_swapped_during_write_file_never_gets_a_file_outside(
    executor: ToolExecutor, workspace: Path, outside: Path, check: str
) -> None:
    (workspace / "real").mkdir()
    written = 0
    with Flipper(workspace / "real", outside):
        for n in range(1000):
            for path in ("real/secret.txt", f"real/new-{n}/f.txt"):
                outcome = await executor.execute("write_file", {"path": path, "content": "pwned\n"})
                written += outcome.ok
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "TOP-SECRET\n"
    assert written > 0 and (workspace / "real" / "secret.txt").read_text() == "pwned\n"


@contextlib.contextmanager
def _fifo(path: Path) -> Iterator[Path]:
    """A named pipe nobody writes to. On the way out, a reader still blocked on it (a tool that opened it) gets an
    end of file, so a failing test fails instead of hanging the run."""
    os.mkfifo(path)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


async def _promptly(executor: ToolExecutor, tool: str, arguments: dict[str, Any]) -> Any:
    return await asyncio.wait_for(executor.execute(tool, arguments), timeout=5)


async def test_a_named_pipe_is_never_opened(executor: ToolExecutor, workspace: Path, check: str) -> None:
    (workspace / "notes.txt").write_text("needle in a file\n")
    with _fifo(workspace / "pipe"):
        for tool, arguments in _content_calls("pipe"):
            outcome = await _promptly(executor, tool, arguments)
            assert outcome.error is not None and outcome.error.startswith("[not_a_regular_file] pipe"), tool
        search = await _promptly(executor, "search_in_project", {"query": "needle"})
        assert search.result is not None
        assert [m["path"] for m in search.result["matches"]] == ["notes.txt"]
        on_the_pipe = await _promptly(executor, "search_in_project", {"query": "needle", "path": "pipe"})
        assert on_the_pipe.result is not None and on_the_pipe.result["matches"] == []
        listing = await _promptly(executor, "list_files", {"path": ".", "recursive": True})
        assert listing.result is not None
        assert {i["name"]: i["type"] for i in listing.result["items"]} == {"notes.txt": "file", "pipe": "other"}
        assert stat.S_ISFIFO(os.lstat(workspace / "pipe").st_mode), "write_file left it in place"


async def test_a_unix_socket_is_never_opened(executor: ToolExecutor, workspace: Path, check: str) -> None:
    with socket.socket(socket.AF_UNIX) as server:
        try:
            server.bind(str(workspace / "sock"))
        except OSError as exc:  # a path too long for sun_path
            pytest.skip(f"cannot bind a socket here: {exc}")
        for tool, arguments in _content_calls("sock"):
            outcome = await _promptly(executor, tool, arguments)
            assert outcome.error is not None and outcome.error.startswith("[not_a_regular_file] sock"), tool
        search = await _promptly(executor, "search_in_project", {"query": "x"})
        assert search.result is not None and search.result["matches"] == []
        assert stat.S_ISSOCK(os.lstat(workspace / "sock").st_mode)


async def test_devices_are_never_opened(executor: ToolExecutor, workspace: Path, check: str) -> None:
    (workspace / "zero_link").symlink_to("/dev/zero")
    for tool, arguments in _content_calls("zero_link"):
        outcome = await _promptly(executor, tool, arguments)
        assert outcome.error is not None and outcome.error.startswith("[path_outside_workspace]"), tool
    try:
        os.mknod(workspace / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError as exc:
        pytest.skip(f"mknod is not permitted here: {exc}")
    for tool, arguments in _content_calls("null"):
        outcome = await _promptly(executor, tool, arguments)
        assert outcome.error is not None and outcome.error.startswith("[not_a_regular_file] null"), tool
    search = await _promptly(executor, "search_in_project", {"query": "x"})
    assert search.result is not None and search.result["matches"] == []
    listing = await _promptly(executor, "list_files", {"path": "."})
    assert listing.result is not None
    assert {i["name"]: i["type"] for i in listing.result["items"]} == {"null": "other", "zero_link": "symlink"}
    assert stat.S_ISCHR(os.lstat(workspace / "null").st_mode)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


DETACHED = {
    "setsid": "setsid sh -c 'echo $$ > {pid}; exec sleep 300' &",
    "nohup": "nohup sh -c 'echo $$ > {pid}; exec sleep 300' > /dev/null 2>&1 &",
    "double fork": "(sh -c 'echo $$ > {pid}; exec sleep 300' &) &",
    "daemon": "setsid sh -c '(sh -c \"echo \\$\\$ > {pid}; exec sleep 300\" < /dev/null > /dev/null 2>&1 &)' &",
    "python daemon": (
        f"{sys.executable} -c 'import os, time\n"
        "if os.fork(): os._exit(0)\nos.setsid()\nif os.fork(): os._exit(0)\n"
        'open("{pid}", "w").write(str(os.getpid()))\ntime.sleep(300)\' &'
    ),
    "plain background": "sh -c 'echo $$ > {pid}; exec sleep 300' > /dev/null 2>&1 &",
}


@pytest.mark.skipif(not process.USE_REAPER, reason="detached processes are only followed on Linux")
@pytest.mark.parametrize("timeout", [None, 1])
@pytest.mark.parametrize("how", DETACHED)
async def test_nothing_a_command_starts_outlives_it(
    executor: ToolExecutor, workspace: Path, how: str, timeout: int | None
) -> None:
    """Each command starts a process that leaves its parent (and, but for the last, its process group), waits until
    it wrote its pid, then ends (or, with a timeout, waits to be stopped). Once run_command returned, it is gone."""
    pid_file = workspace / "detached.pid"
    wait = f"while [ ! -s {pid_file} ]; do sleep 0.01; done"
    command = DETACHED[how].format(pid=pid_file) + f"\n{wait}; echo started" + ("; sleep 300" if timeout else "")
    arguments: dict[str, Any] = {"command": command} | ({"timeout": timeout} if timeout else {})
    outcome = await executor.execute("run_command", arguments)
    pid = int(pid_file.read_text())
    try:
        assert outcome.result is not None and outcome.result["stdout"] == "started\n", outcome
        assert outcome.result["timed_out"] is (timeout is not None)
        assert not _alive(pid), f"{how}: pid {pid} outlived run_command"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not process.USE_REAPER, reason="the wrapper runs on Linux only")
async def test_the_wrapper_keeps_exit_codes_and_output(executor: ToolExecutor) -> None:
    for command, code in (("echo out; echo err >&2; exit 3", 3), ("kill -9 $$", -9), ("kill -TERM $$", -15)):
        outcome = await executor.execute("run_command", {"command": command})
        assert outcome.result is not None and outcome.result["exit_code"] == code, command
    outcome = await executor.execute("run_command", {"command": "echo out; echo err >&2"})
    assert outcome.result is not None and (outcome.result["stdout"], outcome.result["stderr"]) == ("out\n", "err\n")
    trapped = await executor.execute("run_command", {"command": "trap 'exit 7' TERM; sleep 300 & wait", "timeout": 1})
    assert trapped.result is not None and (trapped.result["timed_out"], trapped.result["exit_code"]) == (True, 7)
    deaf = await executor.execute("run_command", {"command": "trap '' TERM; sleep 300", "timeout": 1})
    assert deaf.result is not None and (deaf.result["timed_out"], deaf.result["exit_code"]) == (True, -9)
