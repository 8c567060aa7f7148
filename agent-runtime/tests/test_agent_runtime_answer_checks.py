"""Which answers end a turn, and which report work no tool did (told back to the model)."""

from __future__ import annotations

from typing import Any

import orjson

from codelab_agent_runtime.turns.answer_checks import unfinished

OFFERED = ("read_file", "write_file", "edit_file", "list_files", "run_command")
REQUEST = "Files in the project:\nshapes.py\napp.py\ntest_app.py\n\nMy request: rename Box to Crate"


def turn(*calls: tuple[str, dict[str, Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """The turn's user message, then each call with its result."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": REQUEST}]
    for index, (name, arguments, result) in enumerate(calls):
        call = {"id": f"c{index}", "type": "function", "function": {"name": name, "arguments": orjson.dumps(arguments)}}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"c{index}", "content": orjson.dumps(result).decode()})
    return messages


EDITED_SHAPES = ("edit_file", {"path": "shapes.py", "old_text": "Box", "new_text": "Crate"}, {"success": True})


def test_a_file_said_to_be_changed_that_no_tool_changed_is_named() -> None:
    told = unfinished("I renamed Box to Crate in shapes.py and app.py.", turn(EDITED_SHAPES), OFFERED)

    assert told is not None and told.startswith("You said you changed app.py, but no tool changed it")


def test_a_report_of_work_done_ends_the_turn() -> None:
    history = turn(EDITED_SHAPES, ("edit_file", {"path": "./app.py", "old_text": "B", "new_text": "C"}, {"ok": 1}))

    assert unfinished("I renamed Box to Crate in shapes.py and app.py (edit_file).", history, OFFERED) is None
    assert unfinished("Renamed in shapes.py. The tests in test_app.py pass.", turn(EDITED_SHAPES), OFFERED) is None


def test_a_failed_edit_is_named_with_its_error_and_a_rejection_is_not() -> None:
    failed = ("edit_file", {"path": "app.py", "old_text": "x", "new_text": "y"}, {"error": "[no_match] not found"})
    rejected = ("write_file", {"path": "app.py", "content": ""}, {"error": "no", "rejected_by_user": True})

    told = unfinished("Done.", turn(failed), OFFERED)

    assert told is not None and told.startswith("Your edit_file call failed, so nothing was changed: [no_match]")
    assert unfinished("OK, I left app.py alone.", turn(rejected), OFFERED) is None


def test_an_announced_call_is_asked_for_and_a_plain_answer_is_not() -> None:
    told = unfinished('To create it, call write_file("a.txt", "hi").', turn(), OFFERED)

    assert told is not None and told.startswith("You said what you would do (write_file)")
    assert unfinished("I will now edit app.py to fix it.", turn(), OFFERED) is not None
    assert unfinished("shapes.py defines Box, a 3D box with a volume() method.", turn(), OFFERED) is None
