"""The figures of docs/security.md, "The client's tools": `.venv/bin/python client/tests/tool_guard_figures.py`.

1. The swap race: 3,000 `read_file` calls on a path whose file, or a folder on the way, keeps turning into a
   symlink leading out (the thread of test_client_tool_confinement.py), counted by outcome, as on Linux (the
   no-follow walk and the `/proc/self/fd` check) and as elsewhere (the walk only); then the same race against
   read_file's old way (check the path, open it by name), to show the race is real. Errors are counted by code;
   `after the open` marks a path the walk let through and the `/proc/self/fd` check refused.
2. What the reaper wrapper costs: the median wall time of `run_command "true"` with and without it.
3. What opening every file through the walk costs a search: `search_in_project` over this repository.
"""

from __future__ import annotations

import asyncio
import stat
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from codelab_client.tools import ToolError, ToolExecutor, Workspace, process
from codelab_client.tools import workspace as workspace_module

sys.path.insert(0, str(Path(__file__).parent))
from test_client_tool_confinement import SWAP_READS, Flipper

RUNS = 60
REPOSITORY = Path(__file__).resolve().parents[2]


def _setup(root: Path, through: str) -> tuple[ToolExecutor, Flipper]:
    workspace, outside = root / "ws", root / "outside"
    (workspace / "real").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("TOP-SECRET\n")
    (workspace / "real" / "secret.txt").write_text("harmless\n")
    flipped = workspace / "real" / "secret.txt" if through == "file" else workspace / "real"
    return ToolExecutor(workspace), Flipper(flipped, outside / "secret.txt" if through == "file" else outside)


def _kind(error: str) -> str:
    """The error's code; a path refused by the check after the open is told from one `resolve` refused."""
    code = error.split("]")[0] + "]"
    return f"{code} after the open" if "as it was opened" in error else code


def _plain_read(workspace: Workspace) -> bool:
    """Whether read_file's old way (resolve the path, stat it, open it by path) read the secret; in a thread, as
    tools run."""
    try:
        target = workspace.resolve("real/secret.txt")
        if not stat.S_ISREG(target.stat().st_mode):
            return False
        with target.open("rb") as fh:
            return b"TOP-SECRET" in fh.read()
    except (OSError, ToolError):
        return False


async def swap_figures() -> None:
    for through in ("file", "folder"):
        for proc in (True, False):
            workspace_module.USE_PROC_FD = proc
            with tempfile.TemporaryDirectory() as folder:
                executor, flipper = _setup(Path(folder), through)
                outcomes: Counter[str] = Counter()
                with flipper:
                    for _ in range(SWAP_READS):
                        outcome = await executor.execute("read_file", {"path": "real/secret.txt"})
                        if "TOP-SECRET" in repr(outcome):
                            outcomes["LEAKED"] += 1
                        elif outcome.ok:
                            outcomes["inside content"] += 1
                        else:
                            outcomes[_kind(outcome.error or "")] += 1
                how = "walk and /proc/self/fd check" if proc else "walk only"
                print(f"swap through the {through}, {how}: {dict(outcomes)} ({flipper.flips} flips)")
        with tempfile.TemporaryDirectory() as folder:
            executor, flipper = _setup(Path(folder), through)
            leaked = 0
            with flipper:
                for _ in range(SWAP_READS):
                    leaked += await asyncio.to_thread(_plain_read, executor.workspace)
            print(f"swap through the {through}, plain open of the resolved path: {leaked} leaked of {SWAP_READS}")


async def wrapper_figures(workspace: Path) -> None:
    executor = ToolExecutor(workspace)
    medians: dict[bool, list[float]] = {}
    for reap in (False, True, False, True):
        process.USE_REAPER = reap
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            outcome = await executor.execute("run_command", {"command": "true"})
            times.append((time.perf_counter() - started) * 1000)
            assert outcome.ok
        medians.setdefault(reap, []).append(statistics.median(times))
    without, with_ = min(medians[False]), min(medians[True])
    print(f"run_command 'true', median of {RUNS} (best of 2 rounds): {without:.1f} ms without the reaper, ", end="")
    print(f"{with_:.1f} ms with it: {with_ - without:.1f} ms per call")


async def search_figures() -> None:
    executor = ToolExecutor(REPOSITORY)
    times = []
    for _ in range(5):
        started = time.perf_counter()
        outcome = await executor.execute("search_in_project", {"query": "no such " + "text anywhere"})
        times.append((time.perf_counter() - started) * 1000)
        assert outcome.ok
    print(f"search_in_project over the repository, best of 5: {min(times):.0f} ms")


async def main() -> None:
    await swap_figures()
    if process.USE_REAPER:
        with tempfile.TemporaryDirectory() as folder:
            await wrapper_figures(Path(folder))
    await search_figures()


if __name__ == "__main__":
    asyncio.run(main())
