"""docs/protocol.md is the contract: its examples must validate against the wire models, and it must name
every frame type and error code the code has."""

import json
import re
from pathlib import Path
from typing import Any, get_args

import pytest

from codelab_common.protocol import (
    INBOUND_FRAME_TYPES,
    TOOLS,
    AgentRequest,
    ErrorCode,
    InputAccepted,
    OutboundFrame,
    StepDone,
    inbound_frame_adapter,
    outbound_frame_adapter,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
INBOUND = set(INBOUND_FRAME_TYPES)
OUTBOUND = {model.model_fields["type"].default for model in get_args(get_args(OutboundFrame)[0])}


def _json_examples() -> list[dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)\n```", DOC.read_text(), flags=re.DOTALL)
    return [json.loads(block) for block in blocks]


def _validate(example: dict[str, Any]) -> None:
    if "session_id" in example:
        AgentRequest.model_validate(example)
    elif "after_seq" in example:
        InputAccepted.model_validate(example)
    elif "status" in example and "type" not in example:
        StepDone.model_validate(example)
    elif "error" in example and "type" not in example:
        assert set(example["error"]) == {"message", "type", "code"}
    elif example["type"] in INBOUND:
        inbound_frame_adapter.validate_python(example)
    else:
        outbound_frame_adapter.validate_python(example)


@pytest.mark.parametrize("example", _json_examples(), ids=lambda e: e.get("type") or next(iter(e)))
def test_every_example_in_the_doc_is_a_valid_frame(example: dict[str, Any]) -> None:
    _validate(example)


def test_the_doc_names_every_frame_type_error_code_and_tool() -> None:
    text = DOC.read_text()
    names = [*INBOUND, *OUTBOUND, *(code.value for code in ErrorCode), *(tool.wire for tool in TOOLS)]
    missing = [name for name in names if f"`{name}`" not in text]
    assert not missing, f"docs/protocol.md does not mention {missing}"
