"""A step that fails inside agent-runtime: the caller is told in-band, and the log has the whole traceback."""

from __future__ import annotations

import json

import pytest

from codelab_agent_runtime.store.sessions import Lease, SqlSessionStore
from codelab_common.logs import configure_logging
from tests.fixtures.agent_runtime import RunningAgentRuntime


async def test_a_failed_step_logs_its_traceback_with_the_session(
    agent_runtime: RunningAgentRuntime, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def unreadable(self: SqlSessionStore, session_id: str, owner: str, ttl_s: float) -> Lease | None:
        raise OSError("disk I/O error")

    monkeypatch.setattr(SqlSessionStore, "acquire", unreadable)
    configure_logging("agent-runtime")

    step = await agent_runtime.send("broken-1", {"type": "user_message", "content": "hi"})

    assert [error["code"] for error in step.errors] == ["INTERNAL"]
    assert step.done == {"status": "failed", "pending_call_ids": []}
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [failed] = [line for line in lines if line["event"] == "step_failed"]
    assert failed["session_id"] == "broken-1"
    assert failed["exception"].startswith("Traceback (most recent call last):")
    assert "in submit" in failed["exception"] and failed["exception"].endswith("OSError: disk I/O error")
