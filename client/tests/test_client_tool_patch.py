"""apply_patch: a pure-Python unified-diff applier that applies what git and models write, or rejects cleanly."""

from __future__ import annotations

import subprocess
from pathlib import Path

from codelab_client.tools import ToolExecutor

ORIGINAL = "".join(f"line {i}\n" for i in range(1, 21))


async def test_modify_a_file(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "f.txt").write_text(ORIGINAL)
    patch = "--- a/f.txt\n+++ b/f.txt\n@@ -4,3 +4,3 @@\n line 4\n-line 5\n+LINE FIVE\n line 6\n"
    outcome = await executor.execute("apply_patch", {"patch": patch})
    assert outcome.result == {"success": True, "files_changed": ["f.txt"], "created": [], "deleted": []}
    assert (workspace / "f.txt").read_text() == ORIGINAL.replace("line 5\n", "LINE FIVE\n")


async def test_hunks_with_wrong_line_numbers_and_miscounted_headers_still_apply(
    executor: ToolExecutor, workspace: Path
) -> None:
    (workspace / "f.txt").write_text(ORIGINAL)
    patch = (
        "--- a/f.txt\n+++ b/f.txt\n"
        "@@ -1,2 +1,2 @@\n line 9\n-line 10\n+ten\n line 11\n"
        "@@ -30,3 +30,4 @@\n line 15\n+fifteen and a half\n line 16\n"
    )
    outcome = await executor.execute("apply_patch", {"patch": patch})
    assert outcome.ok, outcome.error
    text = (workspace / "f.txt").read_text()
    assert "ten\n" in text and "line 10\n" not in text
    assert "line 15\nfifteen and a half\nline 16\n" in text


async def test_hunk_header_without_numbers(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "f.txt").write_text(ORIGINAL)
    outcome = await executor.execute("apply_patch", {"patch": "--- f.txt\n+++ f.txt\n@@\n-line 7\n+seven\n"})
    assert outcome.ok, outcome.error
    assert (workspace / "f.txt").read_text() == ORIGINAL.replace("line 7\n", "seven\n")


async def test_create_delete_and_rename(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "old.txt").write_text("bye\n")
    (workspace / "keep.txt").write_text("a\nb\n")
    patch = (
        "diff --git a/new/made.py b/new/made.py\nnew file mode 100644\n"
        "--- /dev/null\n+++ b/new/made.py\n@@ -0,0 +1,2 @@\n+def f():\n+    return 1\n"
        "diff --git a/old.txt b/old.txt\ndeleted file mode 100644\n"
        "--- a/old.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-bye\n"
        "diff --git a/keep.txt b/moved.txt\nsimilarity index 50%\nrename from keep.txt\nrename to moved.txt\n"
        "--- a/keep.txt\n+++ b/moved.txt\n@@ -1,2 +1,2 @@\n a\n-b\n+B\n"
    )
    outcome = await executor.execute("apply_patch", {"patch": patch})
    assert outcome.result is not None, outcome.error
    assert outcome.result["created"] == ["new/made.py"]
    assert sorted(outcome.result["deleted"]) == ["keep.txt", "old.txt"]
    assert (workspace / "new/made.py").read_text() == "def f():\n    return 1\n"
    assert not (workspace / "old.txt").exists() and not (workspace / "keep.txt").exists()
    assert (workspace / "moved.txt").read_text() == "a\nB\n"


async def test_no_newline_at_end_of_file_and_crlf_are_respected(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "win.txt").write_bytes(b"one\r\ntwo\r\n")
    (workspace / "tail.txt").write_text("alpha\nbeta")
    patch = (
        "--- a/win.txt\n+++ b/win.txt\n@@ -1,2 +1,2 @@\n one\n-two\n+zwei\n"
        "--- a/tail.txt\n+++ b/tail.txt\n@@ -1,2 +1,2 @@\n alpha\n-beta\n\\ No newline at end of file\n+gamma\n"
    )
    outcome = await executor.execute("apply_patch", {"patch": patch})
    assert outcome.ok, outcome.error
    assert (workspace / "win.txt").read_bytes() == b"one\r\nzwei\r\n"
    assert (workspace / "tail.txt").read_text() == "alpha\ngamma\n"


async def test_a_hunk_that_does_not_match_is_rejected_and_nothing_changes(
    executor: ToolExecutor, workspace: Path
) -> None:
    (workspace / "a.txt").write_text("a1\na2\n")
    (workspace / "b.txt").write_text("b1\nb2\n")
    patch = (
        "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n a1\n-a2\n+A2\n"
        "--- a/b.txt\n+++ b/b.txt\n@@ -1,2 +1,2 @@\n b1\n-bX\n+B2\n"
    )
    outcome = await executor.execute("apply_patch", {"patch": patch})
    assert outcome.error is not None
    assert outcome.error.startswith("[patch_rejected] hunk 1 of 1 for b.txt does not match the file")
    assert "'bX'" in outcome.error
    assert (workspace / "a.txt").read_text() == "a1\na2\n"
    assert (workspace / "b.txt").read_text() == "b1\nb2\n"


async def test_patch_errors(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "exists.txt").write_text("x\n")
    garbage = await executor.execute("apply_patch", {"patch": "please change line 3"})
    assert garbage.error is not None and garbage.error.startswith("[invalid_patch]")
    missing = await executor.execute("apply_patch", {"patch": "--- a/nope.txt\n+++ b/nope.txt\n@@ -1 +1 @@\n-a\n+b\n"})
    assert missing.error == "[file_not_found] File not found: nope.txt"
    clash = await executor.execute("apply_patch", {"patch": "--- /dev/null\n+++ b/exists.txt\n@@ -0,0 +1 @@\n+y\n"})
    assert clash.error is not None and clash.error.startswith("[patch_rejected]")
    assert (workspace / "exists.txt").read_text() == "x\n"


async def test_a_git_generated_patch_round_trips(executor: ToolExecutor, workspace: Path) -> None:
    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@e", *argv],
            cwd=workspace,
            check=True,
            capture_output=True,
            text=True,
        )
        return done.stdout

    git("init")
    (workspace / "m.py").write_text(ORIGINAL)
    git("add", ".")
    git("commit", "-m", "base")
    changed = ORIGINAL.replace("line 2\n", "two\n").replace("line 18\n", "").replace("line 10\n", "line 10\nnew\n")
    (workspace / "m.py").write_text(changed)
    patch = git("diff")
    git("checkout", "m.py")
    outcome = await executor.execute("apply_patch", {"patch": patch})
    assert outcome.ok, outcome.error
    assert (workspace / "m.py").read_text() == changed


async def test_a_patch_with_failing_hunks_writes_nothing_and_names_each_with_the_closest_lines(
    executor: ToolExecutor, workspace: Path
) -> None:
    source = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
    (workspace / "calc.py").write_text(source)
    (workspace / "notes.txt").write_text(ORIGINAL)
    patch = (
        "--- a/notes.txt\n+++ b/notes.txt\n@@ -2,1 +2,1 @@\n-line 2\n+LINE TWO\n"
        "--- a/calc.py\n+++ b/calc.py\n"
        "@@ -1,2 +1,2 @@\n def add(a, b):\n-    return a-b\n+    return a + b\n"
        "@@ -5,2 +5,2 @@\n def mul(a, b):\n-    return a * b\n+    return b * a\n"
        "@@ -9,2 +9,2 @@\n def div(x, y):\n-    return x // y\n+    return x / y\n"
    )

    outcome = await executor.execute("apply_patch", {"patch": patch})

    assert outcome.error is not None and outcome.error.startswith("[patch_rejected]")
    assert "hunk 1 of 3 for calc.py" in outcome.error and "hunk 3 of 3 for calc.py" in outcome.error
    assert "hunk 2 of 3" not in outcome.error, "the hunk that matches is not reported"
    assert "The closest lines in the file (1-2):\n     1| def add(a, b):\n     2|     return a - b" in outcome.error
    assert (workspace / "calc.py").read_text() == source and (workspace / "notes.txt").read_text() == ORIGINAL
