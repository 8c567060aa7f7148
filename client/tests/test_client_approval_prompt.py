"""What `codelab chat` shows before the user approves a call."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from codelab_client.approval_prompt import ConsoleApprover
from codelab_client.tools import Workspace
from codelab_common.protocol import ToolCall


def shown(call: ToolCall, workspace: Workspace | None = None) -> str:
    console = Console(record=True, width=100)
    console.print(ConsoleApprover(console, workspace)._preview(call))
    return console.export_text()


def edit(**arguments: str) -> ToolCall:
    return ToolCall(call_id="call_1", tool_name="edit_file", arguments=arguments, requires_approval=True)


def test_an_edit_is_previewed_as_the_file_will_change_and_a_failing_one_says_so(tmp_path: Path) -> None:
    (tmp_path / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    workspace = Workspace(tmp_path)

    joined = shown(
        edit(path="calc.py", old_text="def add(a, b): return a - b", new_text="def add(a, b): return a + b"), workspace
    )
    missing = shown(edit(path="calc.py", old_text="return a * b", new_text="return a + b"), workspace)

    assert "-    return a - b" in joined and "+    return a + b" in joined, "the lines the edit really changes"
    assert "-def add" not in joined
    assert "This edit will fail: [no_match] old_text was not found in calc.py" in missing


def test_an_edit_is_previewed_as_a_diff_of_the_replaced_text() -> None:
    arguments = {"path": "calc.py", "old_text": "    return a - b\n", "new_text": "    return a + b\n"}
    text = shown(ToolCall(call_id="call_1", tool_name="edit_file", arguments=arguments, requires_approval=True))
    assert "edit_file wants approval: edit calc.py" in text
    assert "-    return a - b" in text and "+    return a + b" in text
