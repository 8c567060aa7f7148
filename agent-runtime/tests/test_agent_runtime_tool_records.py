"""Recognising tool calls and results that a model wrote into its answer as text."""

from __future__ import annotations

import pytest

from codelab_agent_runtime.tools.records import RecordFinder, call_written_as_text

FINDER = RecordFinder.for_tools(("read_file", "write_file"))


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ('Sure. {"name": "read_file"', 6),
        ('x <tool_response>{"a": 1}', 2),
        ('Result: {"success": true, "bytes_written": 3}', 8),
        ('{"name": "tally_levy", "arguments": {"net": 1}}', 0),
        ('Ran it: {"name": "pip install requests","exit_code":0,"stdout":"ok"}', 8),
        ('The dict {"name": "Alice", "age": 3} is fine.', None),
        ("The port is 48213.", None),
    ],
)
def test_records_are_found_where_they_start_and_prose_is_left_alone(text: str, at: int | None) -> None:
    assert FINDER.find(text) == at


def test_the_call_behind_a_fence_or_tag_is_read_for_the_correction() -> None:
    fenced = '```json\n{"name": "write_file", "arguments": {"path": "s.json", "content": {"port": 1}}}\n```'
    assert call_written_as_text(fenced) == ("write_file", {"path": "s.json", "content": {"port": 1}})
    assert call_written_as_text('<tool_call>\n{"name": "read_file", "parameters": {"path": "a"}}') == (
        "read_file",
        {"path": "a"},
    )
    assert call_written_as_text("no call here") is None
