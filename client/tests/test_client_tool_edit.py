"""edit_file: exact and whitespace-tolerant matches, the errors a model retries from, and what the file keeps."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from codelab_client.tools import ToolExecutor

APP = "def greet(name):\n    message = 'hi ' + name\n    return message\n\n\ndef main():\n    print(greet('bob'))\n"


async def _edit(executor: ToolExecutor, path: str, old: str, new: str) -> Any:
    return await executor.execute("edit_file", {"path": path, "old_text": old, "new_text": new})


async def test_exact_match_replaces_once_and_reports_line_and_diff(executor: ToolExecutor, workspace: Path) -> None:
    app = workspace / "app.py"
    app.write_text(APP)
    app.chmod(0o755)
    outcome = await _edit(executor, "app.py", "'hi ' + name", "f'hello {name}'")
    assert app.read_text() == APP.replace("'hi ' + name", "f'hello {name}'")
    assert stat.S_IMODE(app.stat().st_mode) == 0o755
    assert outcome.result == {
        "success": True,
        "path": "app.py",
        "replacements": 1,
        "line": 2,
        "diff": "--- a/app.py\n+++ b/app.py\n@@ -1,4 +1,4 @@\n def greet(name):\n"
        "-    message = 'hi ' + name\n+    message = f'hello {name}'\n     return message\n \n",
    }
    assert [name for name in os.listdir(workspace)] == ["app.py"]


async def test_several_occurrences_are_refused_with_their_lines(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "a.py").write_text("x = 1\ny = 2\nx = 1\n\nx = 1\n")
    outcome = await _edit(executor, "a.py", "x = 1", "x = 3")
    assert outcome.error == (
        "[ambiguous_match] old_text occurs 3 times in a.py (lines 1, 3, 5); it must match exactly once. "
        "Include more of the surrounding lines in old_text (and in new_text) so it matches only one place."
    )
    assert (workspace / "a.py").read_text() == "x = 1\ny = 2\nx = 1\n\nx = 1\n"
    more_context = await _edit(executor, "a.py", "y = 2\nx = 1\n", "y = 2\nx = 3\n")
    assert more_context.ok
    assert (workspace / "a.py").read_text() == "x = 1\ny = 2\nx = 3\n\nx = 1\n"


async def test_trailing_whitespace_is_tolerated(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "notes.md").write_text("# Title   \nfirst line\t\nsecond\n")
    outcome = await _edit(executor, "notes.md", "# Title\nfirst line\n", "# New title\nfirst line\n")
    assert outcome.result is not None and outcome.result["line"] == 1
    assert (workspace / "notes.md").read_text() == "# New title\nfirst line\nsecond\n"


async def test_wrong_indentation_is_tolerated_and_new_text_reindented(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "app.py").write_text(APP)
    old = "message = 'hi ' + name\nreturn message\n"
    new = "if not name:\n    name = 'you'\nmessage = 'hi ' + name\nreturn message\n"
    outcome = await _edit(executor, "app.py", old, new)
    assert outcome.result is not None and outcome.result["line"] == 2
    assert (workspace / "app.py").read_text() == (
        "def greet(name):\n"
        "    if not name:\n"
        "        name = 'you'\n"
        "    message = 'hi ' + name\n"
        "    return message\n"
        "\n\ndef main():\n    print(greet('bob'))\n"
    )


async def test_too_deep_indentation_is_shifted_back(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "app.py").write_text(APP)
    deep = "        "
    outcome = await _edit(
        executor, "app.py", f"{deep}print(greet('bob'))", f"{deep}print(greet('ann'))\n{deep}return 0"
    )
    assert outcome.ok, outcome.error
    assert (workspace / "app.py").read_text().endswith("def main():\n    print(greet('ann'))\n    return 0\n")


async def test_uneven_indentation_is_refused_with_the_real_lines(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "app.py").write_text(APP)
    outcome = await _edit(executor, "app.py", "def main():\nprint(greet('bob'))\n", "def main():\nprint('x')\n")
    assert outcome.error == (
        "[no_match] old_text matches lines 6-7 of app.py only when indentation is ignored, and its indentation "
        "differs from the file's unevenly. Those lines are (the numbers are not part of the file):\n"
        "   6 | def main():\n"
        "   7 |     print(greet('bob'))\n"
        "Copy them with their exact indentation and retry."
    )
    assert (workspace / "app.py").read_text() == APP


async def test_one_statement_copied_without_indentation_becomes_several(
    executor: ToolExecutor, workspace: Path
) -> None:
    (workspace / "app.py").write_text(APP)
    outcome = await _edit(executor, "app.py", "return message", "print(message)\nreturn message")
    assert outcome.ok, outcome.error
    edited = (workspace / "app.py").read_text()
    assert "    message = 'hi ' + name\n    print(message)\n    return message\n\n" in edited


async def test_a_final_newline_in_new_text_does_not_split_the_line(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "c.txt").write_text("alpha beta gamma\n")
    outcome = await _edit(executor, "c.txt", "beta", "BETA\n")
    assert outcome.ok
    assert (workspace / "c.txt").read_text() == "alpha BETA gamma\n"


async def test_crlf_file_keeps_its_line_endings(executor: ToolExecutor, workspace: Path) -> None:
    path = workspace / "win.txt"
    path.write_bytes(b"one\r\ntwo\r\nthree\r\n")
    exact = await _edit(executor, "win.txt", "one\ntwo\n", "one\n2\n2.5\n")
    assert exact.result is not None and exact.result["line"] == 2
    assert path.read_bytes() == b"one\r\n2\r\n2.5\r\nthree\r\n"
    assert "\r" not in exact.result["diff"]
    path.write_bytes(b"if x:\r\n\tgo()  \r\n\tend")
    loose = await _edit(executor, "win.txt", "go()\nend\n", "stop()\nend\n")
    assert loose.ok, loose.error
    assert path.read_bytes() == b"if x:\r\n\tstop()\r\n\tend"


async def test_lines_joined_by_the_model_still_match_and_the_file_keeps_its_layout(
    executor: ToolExecutor, workspace: Path
) -> None:
    calc = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n"
    (workspace / "calc.py").write_text(calc)
    (workspace / "settings.json").write_text('{\n  "debug": true,\n  "workers": 4\n}\n')

    joined = await _edit(executor, "calc.py", "def add(a, b): return a - b", "def add(a, b): return a + b")
    squeezed = await _edit(executor, "settings.json", '{"debug":true,', '{"debug": false,')

    assert joined.ok and squeezed.ok
    assert (workspace / "calc.py").read_text() == calc.replace("return a - b", "return a + b", 1)
    assert (workspace / "settings.json").read_text() == '{\n  "debug": false,\n  "workers": 4\n}\n'
    twice = await _edit(executor, "calc.py", "(a,b):", "(a, b, c):")
    assert twice.error is not None
    assert twice.error.startswith("[ambiguous_match] old_text occurs 2 times in calc.py (lines 1, 5)")


async def test_no_match_shows_the_closest_lines_numbered(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "app.py").write_text(APP)
    outcome = await _edit(executor, "app.py", "def greet(nam):\n    msg = 'hi ' + nam\n", "x")
    assert outcome.error == (
        "[no_match] old_text was not found in app.py. The closest lines are 1-2 (the numbers are not part of the "
        "file):\n"
        "   1 | def greet(name):\n"
        "   2 |     message = 'hi ' + name\n"
        "Copy the lines to change exactly as they are in the file (read_file shows them) and retry."
    )
    assert (workspace / "app.py").read_text() == APP


async def test_closest_lines_are_found_in_a_long_file(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "long.py").write_text("".join(f"value_{i} = {i}\n" for i in range(1, 3001)))
    outcome = await _edit(executor, "long.py", "value_2500 = 2501\nvalue_2501 = 2501\n", "")
    assert outcome.error is not None
    assert "closest lines are 2500-2501" in outcome.error
    assert "2500 | value_2500 = 2500\n2501 | value_2501 = 2501\n" in outcome.error


@pytest.mark.parametrize(
    ("setup", "old", "error"),
    [
        (None, "", "[file_not_found] new.py does not exist; edit_file only changes existing files, use write_file"),
        (None, "x", "[file_not_found] File not found: new.py"),
        (
            "x = 1\n",
            "",
            "[invalid_arguments] old_text is empty; copy the lines to change from the file (read_file shows them), "
            "or use write_file to replace the whole file",
        ),
        ("", "x", "[no_match] old_text was not found: new.py is empty. Use write_file to give it content."),
        ("x = 1\n", "x = 1", "[no_change] old_text and new_text are the same; nothing to change"),
    ],
)
async def test_edit_file_never_creates_files(
    executor: ToolExecutor, workspace: Path, setup: str | None, old: str, error: str
) -> None:
    if setup is not None:
        (workspace / "new.py").write_text(setup)
    outcome = await _edit(executor, "new.py", old, "x = 1")
    assert outcome.error == error
    assert os.listdir(workspace) == ([] if setup is None else ["new.py"])


async def test_binary_files_and_folders_are_refused(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "logo.png").write_bytes(b"\x89PNG\r\n\x00\x00IHDR text")
    binary = await _edit(executor, "logo.png", "IHDR", "HACK")
    assert binary.error == "[binary_file] logo.png is a binary file"
    assert (workspace / "logo.png").read_bytes() == b"\x89PNG\r\n\x00\x00IHDR text"
    (workspace / "pkg").mkdir()
    folder = await _edit(executor, "pkg", "a", "b")
    assert folder.error == "[is_a_directory] pkg is a directory"


async def test_missing_arguments(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "a.txt").write_text("a\n")
    outcome = await executor.execute("edit_file", {"path": "a.txt", "old_text": "a"})
    assert outcome.error == "[invalid_arguments] missing required argument 'new_text'"


async def test_non_utf8_bytes_and_bom_survive_an_edit(executor: ToolExecutor, workspace: Path) -> None:
    path = workspace / "legacy.txt"
    path.write_bytes(b"\xef\xbb\xbfname = 'caf\xe9'\nsize = 1\n")
    outcome = await _edit(executor, "legacy.txt", "name = 'caf\xe9'\nsize = 1\n", "x")
    assert outcome.error is not None and outcome.error.startswith("[no_match]")
    outcome = await _edit(executor, "legacy.txt", "size = 1", "size = 2")
    assert outcome.ok
    assert path.read_bytes() == b"\xef\xbb\xbfname = 'caf\xe9'\nsize = 2\n"


async def test_the_terminal_client_offers_edit_file_and_the_ide_does_not(executor: ToolExecutor) -> None:
    from codelab_common.protocol import IDE_TOOLS
    from codelab_common.protocol.approvals import DEFAULT_POLICY, RuleAction, decide

    assert "edit_file" in executor.supported_tools
    assert "edit_file" not in IDE_TOOLS
    assert decide("edit_file", {"path": "a.py"}, DEFAULT_POLICY).action is RuleAction.ASK


async def test_emptying_a_line_removes_it(executor: ToolExecutor, workspace: Path) -> None:
    (workspace / "m.py").write_text("import os\nimport sys\n\n    x = 1  \nprint(sys.argv)\n")
    outcome = await _edit(executor, "m.py", "import os", "")
    assert outcome.result is not None and outcome.result["line"] == 1
    assert (workspace / "m.py").read_text() == "import sys\n\n    x = 1  \nprint(sys.argv)\n"
    await _edit(executor, "m.py", "x = 1  \n", "")
    assert (workspace / "m.py").read_text() == "import sys\n\nprint(sys.argv)\n"
