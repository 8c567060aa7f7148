"""A tool call's arguments against its schema: what is refused, and what a small model's slip is repaired to."""

from __future__ import annotations

import json

import pytest

from codelab_common.protocol.tools import TOOLS_BY_NAME
from codelab_common.tool_arguments import argument_errors, coerce_arguments, declared_only

WRITE = TOOLS_BY_NAME["write_file"].parameters
READ = TOOLS_BY_NAME["read_file"].parameters
LIST = TOOLS_BY_NAME["list_files"].parameters


def test_missing_and_mistyped_arguments_are_named() -> None:
    assert argument_errors(WRITE, {"path": 3}) == [
        "missing required argument 'content'",
        "argument 'path' must be string, not integer",
    ]
    assert argument_errors(READ, {"path": "a.py", "start_line": True}) == [
        "argument 'start_line' must be integer, not boolean"
    ]
    assert argument_errors(READ, {"path": "a.py", "end_line": 3.0}) == []


def test_a_file_written_as_a_json_object_becomes_its_json_text() -> None:
    settings = {"port": 5173, "debug": False}
    fixed = coerce_arguments(WRITE, {"path": "settings.json", "content": settings})

    assert argument_errors(WRITE, fixed) == []
    assert fixed["content"].endswith("\n") and json.loads(fixed["content"]) == settings


@pytest.mark.parametrize(
    ("schema", "given", "expected"),
    [
        (READ, {"path": "a.py", "end_line": "10"}, {"path": "a.py", "end_line": 10}),
        (LIST, {"path": ".", "recursive": "True"}, {"path": ".", "recursive": True}),
        (WRITE, {"path": "n.txt", "content": 42}, {"path": "n.txt", "content": "42"}),
    ],
)
def test_plain_type_slips_are_repaired(schema: dict[str, object], given: dict[str, object], expected: object) -> None:
    assert coerce_arguments(schema, given) == expected


@pytest.mark.parametrize(
    ("schema", "given"),
    [
        (READ, {"path": "a.py", "end_line": "ten"}),
        (LIST, {"path": ".", "recursive": "yes"}),
        (READ, {"path": ["a.py"]}),
    ],
)
def test_what_has_no_single_meaning_is_left_to_be_refused(schema: dict[str, object], given: dict[str, object]) -> None:
    assert argument_errors(schema, coerce_arguments(schema, given)) != []


def test_undeclared_keys_are_dropped() -> None:
    assert declared_only(READ, {"path": "a.py", "exit_code": 0}) == {"path": "a.py"}
