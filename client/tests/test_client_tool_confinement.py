"""Every tool keeps to the workspace: `..`, absolute paths and symlinks leading out are refused."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from codelab_client.tools import ToolExecutor

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
