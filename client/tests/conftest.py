"""Fixtures of the client's tests: a workspace folder with a sibling folder outside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from codelab_client.tools import ToolExecutor


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    folder = tmp_path / "ws"
    folder.mkdir()
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the workspace holding a secret no tool may reveal or touch."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("TOP-SECRET\n")
    return folder


@pytest.fixture
def executor(workspace: Path) -> ToolExecutor:
    return ToolExecutor(workspace)
