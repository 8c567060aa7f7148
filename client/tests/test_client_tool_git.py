"""git_diff (wire name `git.diff`): uncommitted changes relative to the project, untracked files listed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codelab_client.tools import ToolExecutor


def git(cwd: Path, *argv: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e", "-c", "init.defaultBranch=main", *argv],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


async def test_git_diff_shows_changes_and_untracked_files(executor: ToolExecutor, workspace: Path) -> None:
    git(workspace, "init")
    (workspace / "a.py").write_text("x = 1\n")
    (workspace / "b.py").write_text("y = 1\n")
    git(workspace, "add", ".")
    git(workspace, "commit", "-m", "first")
    (workspace / "a.py").write_text("x = 2\n")
    (workspace / "b.py").write_text("y = 2\n")
    git(workspace, "add", "b.py")
    (workspace / "new.py").write_text("z = 3\n")
    outcome = await executor.execute("git.diff", {})
    assert outcome.result is not None
    diff = outcome.result["diff"]
    assert "-x = 1\n+x = 2\n" in diff and "-y = 1\n+y = 2\n" in diff
    assert outcome.result["untracked"] == ["new.py"]
    scoped = await executor.execute("git_diff", {"path": "a.py"})
    assert scoped.result is not None
    assert "a.py" in scoped.result["diff"] and "b.py" not in scoped.result["diff"]


async def test_git_diff_in_a_repository_without_commits(executor: ToolExecutor, workspace: Path) -> None:
    git(workspace, "init")
    (workspace / "staged.py").write_text("s = 1\n")
    git(workspace, "add", ".")
    outcome = await executor.execute("git.diff", {})
    assert outcome.result is not None and "+s = 1" in outcome.result["diff"]


async def test_git_diff_paths_are_relative_to_a_project_inside_a_repository(tmp_path: Path) -> None:
    git(tmp_path, "init")
    project = tmp_path / "project"
    project.mkdir()
    (project / "m.py").write_text("old\n")
    (tmp_path / "elsewhere.py").write_text("old\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-m", "c")
    (project / "m.py").write_text("new\n")
    (tmp_path / "elsewhere.py").write_text("new\n")
    outcome = await ToolExecutor(project).execute("git.diff", {})
    assert outcome.result is not None
    assert "+++ b/m.py" in outcome.result["diff"] and "elsewhere" not in outcome.result["diff"]


async def test_git_diff_outside_a_repository(
    executor: ToolExecutor, workspace: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(workspace.parent))
    outcome = await executor.execute("git.diff", {})
    assert outcome.error == "[not_a_git_repo] the project is not a git repository"
