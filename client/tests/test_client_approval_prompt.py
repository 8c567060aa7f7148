"""What `codelab chat` shows before the user approves a call."""

from __future__ import annotations

from rich.console import Console

from codelab_client.approval_prompt import ConsoleApprover
from codelab_common.protocol import ToolCall


def shown(call: ToolCall) -> str:
    console = Console(record=True, width=100)
    console.print(ConsoleApprover(console)._preview(call))
    return console.export_text()


def test_an_edit_is_previewed_as_a_diff_of_the_replaced_text() -> None:
    arguments = {"path": "calc.py", "old_text": "    return a - b\n", "new_text": "    return a + b\n"}
    text = shown(ToolCall(call_id="call_1", tool_name="edit_file", arguments=arguments, requires_approval=True))
    assert "edit_file wants approval: edit calc.py" in text
    assert "-    return a - b" in text and "+    return a + b" in text
