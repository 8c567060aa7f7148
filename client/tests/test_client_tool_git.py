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


async def test_git_diff_runs_no_command_the_repository_configures(
    executor: ToolExecutor, workspace: Path, tmp_path: Path
) -> None:
    """git_diff runs unasked, so a cloned repository's config must not make it run anything: fsmonitor, a filter's
    clean command and a textconv driver each leave a marker when run (plain `git diff` runs all three)."""
    git(workspace, "init")
    (workspace / "a.txt").write_text("a\n")
    (workspace / "b.bin").write_text("x\n")
    git(workspace, "add", ".")
    git(workspace, "commit", "-m", "first")
    (workspace / "a.txt").write_text("a\nb\n")
    (workspace / "b.bin").write_text("x\ny\n")
    markers = {name: tmp_path / f"ran-{name}" for name in ("fsmonitor", "clean", "textconv")}
    git(workspace, "config", "core.fsmonitor", f"touch {markers['fsmonitor']}; false")
    git(workspace, "config", "filter.evil.clean", f"touch {markers['clean']}; cat")
    git(workspace, "config", "diff.evil.textconv", f"touch {markers['textconv']}; cat")
    (workspace / ".gitattributes").write_text("*.txt filter=evil\n*.bin diff=evil\n")
    subprocess.run(["git", "diff", "HEAD"], cwd=workspace, capture_output=True, check=False)  # noqa: ASYNC221
    assert all(marker.exists() for marker in markers.values()), "plain git runs them: the setup is live"
    for marker in markers.values():
        marker.unlink()

    outcome = await executor.execute("git.diff", {})

    assert outcome.result is not None and "+b\n" in outcome.result["diff"] and "+y\n" in outcome.result["diff"]
    assert [name for name, marker in markers.items() if marker.exists()] == []
