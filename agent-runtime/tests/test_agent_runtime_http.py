"""The HTTP surface: authentication, the error envelope of bad bodies, the session view, and persistence."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid

import aiohttp
import orjson
import pytest

from codelab_common.testing import free_port
from tests.fixtures.agent_runtime import AgentRuntimeFactory, RunningAgentRuntime

PROTECTED = [("POST", "/agent/message/stream"), ("GET", "/agent/sessions/s-1")]


async def test_protected_endpoints_need_the_internal_key(agent_runtime: RunningAgentRuntime) -> None:
    body = {"session_id": "s-1", "message": {"type": "user_message", "content": "hi"}}
    async with aiohttp.ClientSession() as http:
        for method, path in PROTECTED:
            for headers in ({}, {"X-Internal-Auth": "wrong-key"}, {"Authorization": f"Bearer {agent_runtime.api_key}"}):
                async with http.request(method, agent_runtime.url + path, json=body, headers=headers) as response:
                    payload = await response.json()
                assert response.status == 401, (method, path, headers)
                assert payload["error"]["code"] == "UNAUTHORIZED"

    assert agent_runtime.upstream.requests == []


async def test_health_is_open(agent_runtime: RunningAgentRuntime) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{agent_runtime.url}/health") as response:
        assert response.status == 200
        assert (await response.json()) == {"status": "healthy", "service": "agent-runtime", "version": "0.1.0"}


async def test_ready_checks_the_database_and_llm_proxy(agent_runtime_factory: AgentRuntimeFactory) -> None:
    async with (
        agent_runtime_factory() as up,
        agent_runtime_factory(llm_proxy_url=f"http://127.0.0.1:{free_port()}") as cut,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(f"{up.url}/ready") as ready:
            assert ready.status == 200
            assert (await ready.json())["checks"] == {"database": "ok", "llm_proxy": "ok"}
        async with http.get(f"{cut.url}/ready") as not_ready:
            body = await not_ready.json()
    assert not_ready.status == 503 and body["status"] == "not_ready"
    assert body["checks"]["database"] == "ok" and "unreachable" in body["checks"]["llm_proxy"]


BAD_BODIES = [
    (b"{not json", "INVALID_FORMAT"),
    (b"", "INVALID_FORMAT"),
    (b'{"session_id": "s-1"}', "INVALID_FORMAT"),
    (b'{"session_id": "s-1", "message": {"type": "switch_agent", "content": "x"}}', "INVALID_FORMAT"),
    (b'{"session_id": "s-1", "message": {"type": "user_message", "content": ""}}', "INVALID_FORMAT"),
    (b'{"session_id": "s-1", "message": {"type": "tool_result", "result": "x"}}', "INVALID_FORMAT"),
    (b'{"session_id": "s-1", "message": {"type": "user_message", "content": "hi"}, "tools": "all"}', "INVALID_FORMAT"),
    (b'{"session_id": "bad id!", "message": {"type": "user_message", "content": "hi"}}', "INVALID_SESSION"),
    (b'{"session_id": "", "type": "user_message", "content": "hi"}', "INVALID_SESSION"),
]


async def test_bad_bodies_get_400_in_the_error_envelope(agent_runtime: RunningAgentRuntime) -> None:
    for body, code in BAD_BODIES:
        step = await agent_runtime.step(body)

        assert step.status == 400, body
        assert set(step.body) == {"error"}
        assert step.body["error"]["code"] == code, body
        assert step.body["error"]["type"] == "invalid_request_error"
        assert step.body["error"]["message"]
    assert agent_runtime.upstream.requests == []


async def test_unknown_session_is_404_invalid_session(agent_runtime: RunningAgentRuntime) -> None:
    status, body = await agent_runtime.session("s-missing")

    assert status == 404
    assert body["error"]["code"] == "INVALID_SESSION"


async def test_unknown_route_answers_in_the_envelope(agent_runtime: RunningAgentRuntime) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{agent_runtime.url}/agent/nope", headers=agent_runtime.headers) as response,
    ):
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "NOT_FOUND"


async def test_session_view_shows_history_and_pending_calls(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_tool_calls(("git_diff", {"path": "src"}))
    step = await agent_runtime.send("s-view", {"type": "user_message", "content": "what changed?", "message_id": "m1"})

    status, view = await agent_runtime.session("s-view")

    assert status == 200
    assert view["status"] == "awaiting_tool_results"
    assert view["turn_message_id"] == "m1" and view["step_count"] == 1
    assert view["messages"][0] == {"role": "user", "content": "what changed?"}
    (pending,) = view["pending_calls"]
    assert pending["call_id"] == step.tool_calls[0]["call_id"]
    assert (pending["tool_name"], pending["arguments"], pending["has_result"]) == ("git.diff", {"path": "src"}, False)


POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
"""The machine's PostgreSQL (trust auth); the SQLite default is the fixture's own file."""


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
async def test_history_and_pending_calls_survive_a_restart(
    agent_runtime_factory: AgentRuntimeFactory, database: str
) -> None:
    overrides = {"database_url": POSTGRES_URL} if database == "postgresql" else {}
    session = f"s-restart-{uuid.uuid4().hex[:8]}"
    async with agent_runtime_factory(**overrides) as first:
        first.upstream.reply_text("Hi, I am CodeLab.")
        first.upstream.reply_tool_calls(("read_file", {"path": "README.md"}))
        await first.send(session, {"type": "user_message", "content": "hello"})
        asked = await first.send(session, {"type": "user_message", "content": "read the readme"})
        call_id = asked.tool_calls[0]["call_id"]

    async with agent_runtime_factory(**overrides) as second:
        second.upstream.reply_text("The readme says hi.")
        step = await second.send(session, {"type": "tool_result", "call_id": call_id, "result": "hi"})

        assert step.text == "The readme says hi."
        messages = second.upstream.requests[-1]["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "tool"]
        assert messages[2] == {"role": "assistant", "content": "Hi, I am CodeLab."}
        _, view = await second.session(session)
        assert view["status"] == "idle"
        assert view["messages"][-1] == {"role": "assistant", "content": "The readme says hi."}


def _drop_sessions_table(database: str) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute("DROP TABLE agent_sessions")


async def test_a_broken_database_is_reported_in_band(agent_runtime: RunningAgentRuntime) -> None:
    database = agent_runtime.settings.database_url.removeprefix("sqlite+aiosqlite:///")
    await asyncio.to_thread(_drop_sessions_table, database)

    step = await agent_runtime.send("s-db", {"type": "user_message", "content": "hi"})

    assert step.status == 200
    assert [e["code"] for e in step.errors] == ["INTERNAL"]
    assert step.done == {"status": "failed", "pending_call_ids": []}


async def test_the_events_of_a_seq_no_log_can_hold_are_a_400(agent_runtime: RunningAgentRuntime) -> None:
    headers = {"X-Internal-Auth": agent_runtime.api_key}
    async with aiohttp.ClientSession() as http:
        for after in (2**63, 2**80, -1):
            url = f"{agent_runtime.url}/agent/sessions/far/events?after={after}"
            async with http.get(url, headers=headers) as response:
                assert response.status == 400, after
                assert (await response.json())["error"]["code"] == "INVALID_FORMAT"


async def test_a_principal_may_use_only_its_own_sessions(agent_runtime: RunningAgentRuntime) -> None:
    headers = {"X-Internal-Auth": agent_runtime.api_key}
    async with aiohttp.ClientSession() as http:
        claim = f"{agent_runtime.url}/agent/sessions/owned-1/claim"
        async with http.post(claim, headers={**headers, "X-Codelab-Principal": "alice"}) as response:
            assert response.status == 200 and (await response.json())["principal"] == "alice"
        for path, method in (("claim", "POST"), ("events?after=0", "GET"), ("input", "POST")):
            url = f"{agent_runtime.url}/agent/sessions/owned-1/{path}"
            body = {"message": {"type": "user_message", "content": "hi"}}
            async with http.request(method, url, json=body, headers={**headers, "X-Codelab-Principal": "bob"}) as r:
                assert r.status == 404, path
                assert (await r.json())["error"]["code"] == "INVALID_SESSION"
    assert agent_runtime.upstream.requests == [], "bob's message never reached the model"


async def _idle_stream(
    agent_runtime: RunningAgentRuntime, session_id: str, after: int, idle_after: float = 0
) -> list[tuple[str, str]]:
    """`GET events?idle_after=S` read to its end: (event, data) pairs."""
    url = f"{agent_runtime.url}/agent/sessions/{session_id}/events?idle_after={idle_after}&after={after}"
    async with aiohttp.ClientSession() as http, http.get(url, headers=agent_runtime.headers) as response:
        assert response.status == 200
        body = await asyncio.wait_for(response.text(), timeout=5)
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        events.append((fields.get("event", "message"), fields.get("data", "")))
    return events


async def test_an_idle_sessions_event_stream_ends_when_asked_to(agent_runtime: RunningAgentRuntime) -> None:
    """With `idle_after`, the stream ends once the session has been idle that long: every frame sent, the last one
    closed a turn (a session with nothing logged is idle); without it, it stays open."""
    assert await _idle_stream(agent_runtime, "idle-new", 0) == [("idle", "{}")]
    started = asyncio.get_running_loop().time()
    assert await _idle_stream(agent_runtime, "idle-new", 0, idle_after=0.4) == [("idle", "{}")]
    assert 0.4 <= asyncio.get_running_loop().time() - started < 3

    agent_runtime.upstream.reply_text("Done.")
    step = await agent_runtime.send("idle-done", {"type": "user_message", "content": "hi"})
    events = await _idle_stream(agent_runtime, "idle-done", 0)
    assert [name for name, _ in events] == ["message"] * len(step.frames) + ["idle"]
    assert orjson.loads(events[-2][1])["is_final"] is True
    assert await _idle_stream(agent_runtime, "idle-done", step.frames[-1]["seq"]) == [("idle", "{}")]

    url = f"{agent_runtime.url}/agent/sessions/idle-done/events?after=0"
    async with aiohttp.ClientSession() as http, http.get(url, headers=agent_runtime.headers) as response:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(response.read(), timeout=0.5)


async def test_a_waiting_tool_call_keeps_the_stream_open(agent_runtime: RunningAgentRuntime) -> None:
    agent_runtime.upstream.reply_tool_calls(("read_file", {"path": "a.txt"}))
    step = await agent_runtime.send("idle-tool", {"type": "user_message", "content": "read it"}, tools=["read_file"])
    assert step.tool_calls
    url = f"{agent_runtime.url}/agent/sessions/idle-tool/events?idle_after=0&after=0"
    async with aiohttp.ClientSession() as http, http.get(url, headers=agent_runtime.headers) as response:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(response.read(), timeout=0.5)
