"""read_file, write_file, list_files, create_directory, search_in_project and prompt_user, with their caps."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from codelab_client.tools import Limits, ToolExecutor


async def test_read_file_returns_the_ide_shape(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "main.py").write_text("print('hi')\nprint('bye')\n")
    outcome = await executor.execute("read_file", {"path": "main.py"})
    assert outcome.result == {
        "success": True,
        "content": "print('hi')\nprint('bye')\n",
        "lines_read": 2,
        "truncated": False,
    }


async def test_read_file_line_range(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "n.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    outcome = await executor.execute("read_file", {"path": "n.txt", "start_line": 3, "end_line": 5})
    assert outcome.result is not None
    assert outcome.result["content"] == "line 3\nline 4\nline 5\n"
    assert outcome.result["lines_read"] == 3
    past_end = await executor.execute("read_file", {"path": "n.txt", "start_line": 50})
    assert past_end.result is not None and past_end.result["content"] == ""
    backwards = await executor.execute("read_file", {"path": "n.txt", "start_line": 5, "end_line": 2})
    assert backwards.error is not None and backwards.error.startswith("[invalid_arguments]")


async def test_read_file_truncates_at_the_cap_on_a_line_boundary(workspace: Path) -> None:
    executor = ToolExecutor(workspace, limits=Limits(read_bytes=100))
    (workspace / "big.txt").write_text("".join(f"{i:09d}\n" for i in range(1, 101)))
    outcome = await executor.execute("read_file", {"path": "big.txt"})
    assert outcome.result is not None
    assert outcome.result["truncated"] is True
    assert outcome.result["lines_read"] == 10
    assert outcome.result["content"].endswith("000000010\n")
    assert outcome.result["next_start_line"] == 11
    more = await executor.execute("read_file", {"path": "big.txt", "start_line": 11})
    assert more.result is not None and more.result["content"].startswith("000000011\n")


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (lambda ws: None, "[file_not_found]"),
        (lambda ws: (ws / "target").mkdir(), "[is_a_directory]"),
        (lambda ws: (ws / "target").write_bytes(b"\x89PNG\x00\x00data"), "[binary_file]"),
        (lambda ws: os.mkfifo(ws / "target"), "[not_a_regular_file]"),
    ],
)
async def test_read_file_errors(executor: ToolExecutor, workspace: Path, setup: object, code: str) -> None:
    setup(workspace)  # type: ignore[operator]
    outcome = await executor.execute("read_file", {"path": "target"})
    assert outcome.result is None and outcome.error is not None and outcome.error.startswith(code)


async def test_write_file_creates_folders_and_reports_bytes(executor: ToolExecutor, workspace: Path) -> None:
    outcome = await executor.execute("write_file", {"path": "pkg/sub/mod.py", "content": "é = 1\n"})
    assert outcome.result == {"success": True, "bytes_written": 7, "path": "pkg/sub/mod.py", "created": True}
    assert (workspace / "pkg/sub/mod.py").read_text() == "é = 1\n"


async def test_write_file_without_create_dirs_refuses_missing_folder(executor: ToolExecutor, workspace: Path) -> None:
    outcome = await executor.execute("write_file", {"path": "nope/x.txt", "content": "", "create_dirs": False})
    assert outcome.error is not None and outcome.error.startswith("[directory_not_found]")
    assert not (workspace / "nope").exists()


async def test_write_file_overwrite_keeps_mode_and_makes_backup_on_request(
    executor: ToolExecutor, workspace: Path
) -> None:
    script = workspace / "run.sh"
    script.write_text("echo old\n")
    script.chmod(0o755)
    outcome = await executor.execute("write_file", {"path": "run.sh", "content": "echo new\n", "backup": True})
    assert outcome.result is not None and outcome.result["created"] is False
    assert script.read_text() == "echo new\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    backup = workspace / outcome.result["backup_path"]
    assert backup.name.startswith("run.sh.backup.") and backup.read_text() == "echo old\n"
    plain = await executor.execute("write_file", {"path": "run.sh", "content": "echo newer\n"})
    assert plain.result is not None and "backup_path" not in plain.result
    assert sorted(n for n in os.listdir(workspace) if not n.startswith("run.sh.backup")) == ["run.sh"]


@pytest.mark.parametrize(
    ("before", "content", "after"),
    [
        (None, "x = 1", b"x = 1\n"),
        (b"", "x = 1", b"x = 1\n"),
        (b"old\n", "new", b"new\n"),
        (b"old", "new", b"new"),
        (b"old\n", "new\n", b"new\n"),
        (b"old\n", "", b""),
        (b"a\r\nb\r\n", "a\nB", b"a\r\nB\r\n"),
        (b"a\r\nb", "a\nB\n", b"a\r\nB\r\n"),
        (b"a\nb\n", "a\r\nB\r\n", b"a\nB\n"),
        (None, "a\r\nb", b"a\r\nb\r\n"),
    ],
)
async def test_write_file_keeps_the_final_newline_and_line_endings(
    executor: ToolExecutor, workspace: Path, before: bytes | None, content: str, after: bytes
) -> None:
    target = workspace / "f.txt"
    if before is not None:
        target.write_bytes(before)
    outcome = await executor.execute("write_file", {"path": "f.txt", "content": content})
    assert target.read_bytes() == after
    assert outcome.result is not None and outcome.result["bytes_written"] == len(after)


async def test_write_file_argument_errors(workspace: Path) -> None:
    executor = ToolExecutor(workspace, limits=Limits(write_bytes=10))
    missing = await executor.execute("write_file", {"path": "a.txt"})
    assert missing.error == "[invalid_arguments] missing required argument 'content'"
    too_big = await executor.execute("write_file", {"path": "a.txt", "content": "x" * 11})
    assert too_big.error is not None and too_big.error.startswith("[content_too_large]")
    onto_dir = await executor.execute("write_file", {"path": ".", "content": "x"})
    assert onto_dir.error is not None and onto_dir.error.startswith("[is_a_directory]")
    assert os.listdir(workspace) == []


async def test_list_files_items_hidden_and_pattern(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "lib").mkdir()
    (workspace / "lib" / "main.dart").write_text("x" * 1024)
    (workspace / "lib" / "util.py").write_text("")
    (workspace / ".env").write_text("A=1")
    (workspace / ".git").mkdir()
    (workspace / ".git" / "HEAD").write_text("ref")
    top = await executor.execute("list_files", {"path": "."})
    assert top.result is not None
    assert top.result["items"] == [{"name": "lib", "path": "lib", "type": "directory", "size": 0}]
    nested = await executor.execute("list_files", {"path": "lib", "pattern": "*.dart"})
    assert nested.result == {
        "success": True,
        "path": "lib",
        "items": [{"name": "main.dart", "path": "lib/main.dart", "type": "file", "size": 1024}],
        "total_count": 1,
        "truncated": False,
    }
    hidden = await executor.execute("list_files", {"path": ".", "recursive": True, "include_hidden": True})
    assert hidden.result is not None
    assert [item["path"] for item in hidden.result["items"]] == [
        ".env",
        ".git",
        "lib",
        "lib/main.dart",
        "lib/util.py",
    ]


async def test_list_files_caps_entries(workspace: Path) -> None:
    executor = ToolExecutor(workspace, limits=Limits(list_entries=5))
    for i in range(12):
        (workspace / f"f{i:02d}.txt").write_text("")
    outcome = await executor.execute("list_files", {"path": "."})
    assert outcome.result is not None
    assert outcome.result["total_count"] == 5 and outcome.result["truncated"] is True


async def test_list_files_errors(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "f.txt").write_text("")
    missing = await executor.execute("list_files", {"path": "nothing"})
    assert missing.error is not None and missing.error.startswith("[directory_not_found]")
    on_file = await executor.execute("list_files", {"path": "f.txt"})
    assert on_file.error is not None and on_file.error.startswith("[not_a_directory]")


async def test_create_directory(executor: ToolExecutor, workspace: Path) -> None:
    made = await executor.execute("create_directory", {"path": "a/b/c"})
    assert made.result == {"success": True, "path": "a/b/c", "created": True}
    again = await executor.execute("create_directory", {"path": "a/b/c"})
    assert again.result is not None and again.result["created"] is False
    flat = await executor.execute("create_directory", {"path": "x/y", "recursive": False})
    assert flat.error is not None and flat.error.startswith("[directory_not_found]")
    (workspace / "file").write_text("")
    clash = await executor.execute("create_directory", {"path": "file"})
    assert clash.error is not None and clash.error.startswith("[file_exists]")
    assert (workspace / "a/b/c").is_dir() and not (workspace / "x").exists()


async def test_search_finds_lines_and_skips_git_binaries_and_caches(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "src").mkdir()
    (workspace / "src" / "app.py").write_text("import os\n\ndef needle():\n    return 'needle'\n")
    (workspace / "notes.md").write_text("no match here\n")
    (workspace / ".git").mkdir()
    (workspace / ".git" / "COMMIT_EDITMSG").write_text("needle\n")
    (workspace / "node_modules").mkdir()
    (workspace / "node_modules" / "x.js").write_text("needle\n")
    (workspace / "blob.bin").write_bytes(b"needle\x00\x01")
    outcome = await executor.execute("search_in_project", {"query": "needle"})
    assert outcome.result == {
        "success": True,
        "matches": [
            {"path": "src/app.py", "line": 3, "text": "def needle():"},
            {"path": "src/app.py", "line": 4, "text": "return 'needle'"},
        ],
        "total_count": 2,
        "truncated": False,
    }
    scoped = await executor.execute("search_in_project", {"query": "needle", "path": "notes.md"})
    assert scoped.result is not None and scoped.result["matches"] == []


async def test_search_caps_matches(workspace: Path) -> None:
    executor = ToolExecutor(workspace, limits=Limits(search_matches=3))
    (workspace / "many.txt").write_text("hit\n" * 50)
    outcome = await executor.execute("search_in_project", {"query": "hit"})
    assert outcome.result is not None
    assert outcome.result["total_count"] == 3 and outcome.result["truncated"] is True


async def test_prompt_user_asks_the_human_or_fails_without_one(workspace: Path) -> None:
    asked: list[str] = []

    async def ask(question: str) -> str:
        asked.append(question)
        return "blue"

    interactive = ToolExecutor(workspace, ask_user=ask)
    answered = await interactive.execute("prompt_user", {"question": "Which colour?"})
    assert answered.result == {"answer": "blue"} and asked == ["Which colour?"]
    batch = ToolExecutor(workspace)
    refused = await batch.execute("prompt_user", {"question": "Which colour?"})
    assert refused.error == "[no_user] no user to ask"


async def test_unknown_tools_and_bad_arguments_come_back_as_errors(executor: ToolExecutor) -> None:
    unknown = await executor.execute("format_disk", {})
    assert unknown.error == "[unsupported_tool] Unsupported tool: format_disk"
    not_object = await executor.execute("read_file", ["main.py"])
    assert not_object.error == "[invalid_arguments] arguments must be a JSON object"
    missing = await executor.execute("read_file", {})
    assert missing.error == "[invalid_arguments] missing required argument 'path'"
    wrong_type = await executor.execute("read_file", {"path": 42})
    assert wrong_type.error == "[invalid_arguments] argument 'path' must be a string"
    lenient = await executor.execute("list_files", {"path": ".", "recursive": "true"})
    assert lenient.ok
