"""The default embedded model behind the whole system: `codelab up` with the model, one question, a streamed answer.

Slow (loads the 1.5B model on CPU); run with `-m real_model`. Replies are capped at a few tokens so the turn stays
well under a minute on two cores.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from codelab_client.approvals import reject_all
from codelab_client.events import SessionListener
from codelab_client.launcher import LOCAL_MODELS
from codelab_client.session import AgentSession, TurnStatus
from codelab_client.tools import ToolExecutor
from tests.e2e.system import RunningSystem, codelab_up

pytestmark = pytest.mark.real_model

MODEL = LOCAL_MODELS[0]


class Deltas(SessionListener):
    def __init__(self) -> None:
        self.deltas: list[str] = []
        self.finals = 0

    def on_delta(self, text: str) -> None:
        self.deltas.append(text)

    def on_final(self, frame: dict[str, object]) -> None:
        self.finals += 1


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[RunningSystem]:
    env = {"AGENT_RUNTIME__MAX_TOKENS": "64", "AGENT_RUNTIME__MAX_STEPS": "4", "AGENT_RUNTIME__TEMPERATURE": "0"}
    async with codelab_up(tmp_path, "--model", MODEL, env=env, start_timeout=300, with_model=True) as running:
        yield running


async def test_the_local_model_streams_an_answer(system: RunningSystem, tmp_path: Path) -> None:
    workspace = tmp_path / "project"
    workspace.mkdir()
    listener = Deltas()
    async with AgentSession(
        system.ws_url, ToolExecutor(workspace), reject_all("smoke test"), listener=listener
    ) as session:
        result = await session.run_turn("Say hello in one short sentence. Do not use any tool.", timeout=240)
    assert result.status is TurnStatus.COMPLETED, (result.status, result.errors)
    assert listener.deltas, "no streamed text arrived"
    assert listener.finals == 1
    assert result.text.strip()


async def test_the_local_model_reads_the_file_it_is_asked_about(system: RunningSystem, tmp_path: Path) -> None:
    workspace = tmp_path / "project"
    workspace.mkdir()
    (workspace / "main.py").write_text('def greet(name):\n    return f"Hello, {name}!"\n')
    async with AgentSession(system.ws_url, ToolExecutor(workspace), reject_all("smoke test")) as session:
        result = await session.run_turn("Explain main.py", timeout=240)
    assert result.status is TurnStatus.COMPLETED, (result.status, result.errors)
    calls = [(call["tool_name"], call["arguments"]) for call in result.tool_calls]
    assert ("read_file", {"path": "main.py"}) in calls
    assert result.text.strip(), "an answer followed the tool call"
