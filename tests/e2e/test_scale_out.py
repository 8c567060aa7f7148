"""Scale-out as real processes: two gateways and two agent-runtimes sharing one llm-proxy, Redis and PostgreSQL,
and a process killed with SIGKILL in the middle of a turn.

Each service runs as `python -m <package>` with its settings in its environment, as a deployment runs it. Gateway
A follows agent-runtime A, gateway B agent-runtime B; both agent-runtimes use the machine's PostgreSQL and fan
events out over Redis (a channel prefix of this module's own, and a follower poll long enough that a frame which
arrives in time came through Redis). The model is a FakeOpenAI served by this test, its answers slowed
(`chunk_delay`) so a kill lands mid-answer. The processes start once for the module, on a database of the module's
own (made for it, so both agent-runtimes migrate it at once, and dropped after); a test that kills one leaves it to
the next test's setup to start it again on the same port. Every test uses sessions of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
import pytest_asyncio
import yaml

from codelab_common.testing import FakeOpenAI, free_port, serve_app
from tests.e2e.processes import Service, service_env

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.timeout(120)]

POSTGRES = "postgres@127.0.0.1:5432"
"""The machine's PostgreSQL (trust auth), as in agent-runtime's store tests; its `test` database exists."""
REDIS_URL = "redis://127.0.0.1:6379/0"
MODEL = "scale-model"
KEYS = {"llm-proxy": "scale-proxy-key", "agent-runtime": "scale-agent-key", "gateway": "scale-gateway-key"}
LEASE_TTL_S = 2
FOLLOW_POLL_S = 60
"""Longer than any wait here: a follower on the other agent-runtime that gets a live frame in time got it via Redis."""

ANSWER = " ".join(f"Sentence {n} of a long and slowly told story about a lighthouse keeper." for n in range(1, 9))
"""About 600 characters: 150 chunks of 4."""
CHUNK_DELAY_S = 0.04
"""About 6 s for ANSWER, so a kill after the first deltas lands well inside it."""


# --- processes -----------------------------------------------------------------------------------------------------


@dataclass
class Cluster:
    upstream: FakeOpenAI
    database: str
    """The module's database (a DSN for asyncpg)."""
    proxy: Service
    agents: list[Service]
    """agent-runtime A and B."""
    gateways: list[Service]
    """gateways[i] follows agents[i]."""

    @property
    def services(self) -> list[Service]:
        return [self.proxy, *self.agents, *self.gateways]

    async def start_missing(self) -> None:
        """Start every service that is not running (all at once: each takes seconds to import)."""
        await asyncio.gather(*(service.start() for service in self.services if not service.running))

    async def stop(self) -> None:
        await asyncio.gather(*(service.stop() for service in self.services))

    def driver(self, lease_owner: str) -> int:
        """Which agent-runtime a lease owner (`host:pid:nonce`) is."""
        pid = int(lease_owner.split(":")[1])
        (index,) = [i for i, agent in enumerate(self.agents) if agent.running and agent.pid == pid]
        return index


def _cluster(upstream: FakeOpenAI, database: str, folder: Path, prefix: str) -> Cluster:
    models_file = folder / "models.yaml"
    model = {"name": MODEL, "provider": "openai-compatible", "upstream_model": MODEL, "base_url": upstream.base_url}
    models_file.write_text(
        yaml.safe_dump({"models": [{**model, "context_window": 8192, "retry": {"max_attempts": 1}}]})
    )
    common = {"LOG_JSON": "false"}
    proxy_port = free_port()
    proxy = Service(
        "llm-proxy",
        "codelab_llm_proxy",
        proxy_port,
        service_env(
            "LLM_PROXY__", common, internal_api_key=KEYS["llm-proxy"], port=proxy_port, models_file=models_file
        ),
        folder,
    )
    agents = []
    for name in ("a", "b"):
        port = free_port()
        env = service_env(
            "AGENT_RUNTIME__",
            common,
            internal_api_key=KEYS["agent-runtime"],
            port=port,
            llm_proxy_url=proxy.url,
            llm_proxy_api_key=KEYS["llm-proxy"],
            model=MODEL,
            database_url=f"postgresql+asyncpg://{POSTGRES}/{database}",
            redis_url=REDIS_URL,
            redis_channel_prefix=prefix,
            lease_ttl_s=LEASE_TTL_S,
            follow_poll_s=FOLLOW_POLL_S,
            workspace_context="false",
        )
        agents.append(Service(f"agent-runtime-{name}", "codelab_agent_runtime", port, env, folder))
    gateways = []
    for name, agent in zip(("a", "b"), agents, strict=True):
        port = free_port()
        env = service_env(
            "GATEWAY__",
            common,
            internal_api_key=KEYS["gateway"],
            port=port,
            agent_runtime_url=agent.url,
            agent_runtime_api_key=KEYS["agent-runtime"],
        )
        gateways.append(Service(f"gateway-{name}", "codelab_gateway", port, env, folder))
    return Cluster(upstream, f"postgresql://{POSTGRES}/{database}", proxy, agents, gateways)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    upstream = FakeOpenAI(model=MODEL)
    database = f"codelab_scale_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{database}"')
    try:
        async with serve_app(upstream.app) as url:
            upstream.base_url = f"{url}/v1"
            folder = tmp_path_factory.mktemp("scale-out")
            cluster = _cluster(upstream, database, folder, f"codelab-test-{uuid.uuid4().hex[:8]}:")
            try:
                yield cluster
            finally:
                await cluster.stop()
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


async def _admin(sql: str) -> None:
    connection = await asyncpg.connect(f"postgresql://{POSTGRES}/test")
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest_asyncio.fixture(loop_scope="module")
async def cluster(module_cluster: Cluster) -> AsyncIterator[Cluster]:
    """The module's processes, every one running (started again where a test killed it), the model's script empty;
    what the services logged during the test is printed after it (shown when it fails)."""
    await module_cluster.start_missing()
    upstream = module_cluster.upstream
    upstream.replies.clear()
    upstream.requests.clear()
    upstream.request_meta.clear()
    offsets = {service.name: _size(service.log) for service in module_cluster.services}
    started = time.monotonic()
    try:
        yield module_cluster
    finally:
        print(f"test body took {time.monotonic() - started:.1f} s")
        for service in module_cluster.services:
            with contextlib.suppress(OSError), service.log.open("rb") as log:
                log.seek(offsets[service.name])
                print(f"---- {service.name} ----\n{log.read().decode(errors='replace')}")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# --- the database --------------------------------------------------------------------------------------------------


async def _query(cluster: Cluster, sql: str, *args: object) -> list[Any]:
    connection = await asyncpg.connect(cluster.database)
    try:
        return list(await connection.fetch(sql, *args))
    finally:
        await connection.close()


async def logged(cluster: Cluster, session_id: str) -> list[dict[str, Any]]:
    """The session's event log as stored."""
    sql = "SELECT frame FROM agent_session_events WHERE session_id = $1 ORDER BY seq"
    return [orjson.loads(row["frame"]) for row in await _query(cluster, sql, session_id)]


async def lease_owner(cluster: Cluster, session_id: str) -> str | None:
    rows = await _query(cluster, "SELECT lease_owner FROM agent_sessions WHERE session_id = $1", session_id)
    return rows[0]["lease_owner"] if rows else None


async def history(agent: Service, session_id: str) -> list[dict[str, Any]]:
    headers = {"X-Internal-Auth": KEYS["agent-runtime"]}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{agent.url}/agent/sessions/{session_id}", headers=headers) as response,
    ):
        assert response.status == 200, await response.text()
        view = await response.json()
    messages: list[dict[str, Any]] = view["messages"]
    return messages


async def post_input(agent: Service, session_id: str, frame: dict[str, Any]) -> tuple[int, Any]:
    headers = {"X-Internal-Auth": KEYS["agent-runtime"]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{agent.url}/agent/sessions/{session_id}/input", data=orjson.dumps(frame), headers=headers) as r,
    ):
        return r.status, await r.json(content_type=None)


# --- the client ----------------------------------------------------------------------------------------------------


@dataclass
class Client:
    """The IDE's side of one session (the stream dialect): one socket at a time, every frame it got kept in order."""

    session_id: str
    http: aiohttp.ClientSession
    frames: list[dict[str, Any]] = field(default_factory=list)
    ws: aiohttp.ClientWebSocketResponse | None = None

    async def connect(self, gateway: Service, *, last_seq: int | None = None) -> None:
        await self.close()
        query = "" if last_seq is None else f"?last_seq={last_seq}"
        url = f"ws://127.0.0.1:{gateway.port}/ws/{self.session_id}{query}"
        self.ws = await self.http.ws_connect(url, max_msg_size=0)

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.close()
            self.ws = None

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(orjson.dumps(frame).decode())

    async def say(self, content: str, message_id: str) -> None:
        await self.send({"type": "user_message", "content": content, "message_id": message_id})

    async def recv(self, timeout: float) -> dict[str, Any]:
        assert self.ws is not None
        message = await self.ws.receive(timeout=timeout)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"the socket ended: {message.type.name} {message.data!r}")
        frame: dict[str, Any] = orjson.loads(message.data)
        self.frames.append(frame)
        return frame

    async def until(self, done: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        """Read frames up to the first one `done` accepts; returns it."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv(timeout)
                if done(frame):
                    return frame

    async def deltas_at_least(self, count: int, timeout: float = 15.0) -> None:
        await self.until(lambda _: len(self.deltas) >= count, timeout)

    async def drain(self, timeout: float = 10.0) -> None:
        """After the far end died: keep what was still in flight, until the socket ends."""
        with contextlib.suppress(ConnectionError):
            async with asyncio.timeout(timeout):
                while True:
                    await self.recv(timeout)
        await self.close()

    async def silent(self, within: float) -> None:
        assert self.ws is not None
        with contextlib.suppress(TimeoutError):
            message = await self.ws.receive(timeout=within)
            raise AssertionError(f"expected no frame, got {message.type.name} {message.data!r}")

    @property
    def logged(self) -> list[dict[str, Any]]:
        """The frames of the session's log (with a seq); the gateway's own frames have none."""
        return [frame for frame in self.frames if "seq" in frame]

    @property
    def last_seq(self) -> int:
        return max((frame["seq"] for frame in self.logged), default=0)

    @property
    def deltas(self) -> list[dict[str, Any]]:
        return [frame for frame in self.frames if is_delta(frame)]

    @property
    def text(self) -> str:
        return "".join(frame["content"] for frame in self.deltas)


@pytest_asyncio.fixture(loop_scope="module")
async def new_client() -> AsyncIterator[Callable[[], Client]]:
    async with aiohttp.ClientSession() as http:
        clients: list[Client] = []

        def make() -> Client:
            clients.append(Client(f"scale-{uuid.uuid4().hex[:16]}", http))
            return clients[-1]

        try:
            yield make
        finally:
            for client in clients:
                await client.close()


def is_delta(frame: dict[str, Any]) -> bool:
    return frame.get("type") == "assistant_message" and not frame.get("is_final")


def is_final(frame: dict[str, Any]) -> bool:
    return frame.get("type") == "assistant_message" and bool(frame.get("is_final"))


def is_tool_call(frame: dict[str, Any]) -> bool:
    return frame.get("type") == "tool_call"


def turn_of(frames: list[dict[str, Any]], message_id: str) -> list[dict[str, Any]]:
    """The logged frames of one turn: from its ack to its final frame."""
    start = next(i for i, frame in enumerate(frames) if frame["type"] == "ack" and frame["message_id"] == message_id)
    end = next(i for i, frame in enumerate(frames[start:], start) if is_final(frame))
    return frames[start : end + 1]


def assert_contiguous(frames: list[dict[str, Any]], first: int = 1) -> None:
    seqs = [frame["seq"] for frame in frames]
    assert seqs == list(range(first, first + len(frames))), f"seqs not contiguous from {first}: {seqs}"


def assert_exactly_the_log(client: Client, stored: list[dict[str, Any]]) -> None:
    """What the client holds of the log is the log: every seq from 1 once, in order, each frame as stored."""
    assert_contiguous(client.logged)
    assert client.logged == stored[: len(client.logged)], "a frame the client got differs from the stored one"
    assert client.logged == stored, f"the client lacks frames {client.last_seq + 1}..{len(stored)}"


def text_of(frames: list[dict[str, Any]]) -> str:
    return "".join(frame["content"] for frame in frames if is_delta(frame))


# --- tests ---------------------------------------------------------------------------------------------------------


async def test_a_client_resumes_on_another_gateway_after_its_gateway_is_killed_mid_answer(
    cluster: Cluster, new_client: Callable[[], Client]
) -> None:
    cluster.upstream.reply_text(ANSWER, chunk_delay=CHUNK_DELAY_S)
    client = new_client()
    await client.connect(cluster.gateways[0])
    await client.say("Tell me the story.", "m1")
    await client.deltas_at_least(5)

    await cluster.gateways[0].kill()
    await client.drain()
    held = client.last_seq
    assert not any(is_final(frame) for frame in client.frames), "the kill landed mid-answer"
    await client.connect(cluster.gateways[1], last_seq=held)
    await client.until(is_final, timeout=20)

    assert client.last_seq > held + 1, "gateway B sent the rest, live"
    assert [frame for frame in client.frames if "seq" not in frame] == [], "no frame of the gateways' own"
    final = client.logged[-1]
    assert final["stop_reason"] == "completed" and final["message_id"] == "m1"
    assert client.text == ANSWER
    assert_exactly_the_log(client, await logged(cluster, client.session_id))


async def test_a_killed_gateway_restarted_on_its_port_gives_exactly_the_rest(
    cluster: Cluster, new_client: Callable[[], Client]
) -> None:
    cluster.upstream.reply_text(ANSWER, chunk_delay=CHUNK_DELAY_S)
    client = new_client()
    gateway = cluster.gateways[0]
    await client.connect(gateway)
    await client.say("Tell me the story.", "m1")
    await client.deltas_at_least(5)

    await gateway.kill()
    await client.drain()
    held = client.last_seq
    assert not any(is_final(frame) for frame in client.frames), "the kill landed mid-answer"
    await gateway.start()
    await client.connect(gateway, last_seq=held)
    await client.until(is_final, timeout=20)

    assert client.last_seq > held + 1
    assert client.logged[-1]["stop_reason"] == "completed"
    assert client.text == ANSWER
    assert_exactly_the_log(client, await logged(cluster, client.session_id))


async def test_a_tool_call_is_delivered_once_and_its_result_applied_once(
    cluster: Cluster, new_client: Callable[[], Client]
) -> None:
    upstream = cluster.upstream
    upstream.reply_tool_calls(("read_file", {"path": "notes.txt"}))
    upstream.reply_text("The notes say hello.", chunk_delay=0.01)
    client = new_client()
    await client.connect(cluster.gateways[0])
    await client.say("What do the notes say?", "m1")
    call = await client.until(is_tool_call)

    await cluster.gateways[0].kill()
    await client.drain()
    assert client.last_seq == call["seq"], "the tool call is the step's last frame"
    await client.connect(cluster.gateways[1], last_seq=client.last_seq)
    await client.silent(1.0)  # no second copy of the call, nor anything else: the turn waits for the result
    result = {"type": "tool_result", "call_id": call["call_id"], "result": "hello"}
    await client.send(result)
    await client.send(result)  # the client does not know whether the first arrived
    await client.until(is_final)
    await client.send(result)  # once more after the turn: acknowledged as a duplicate, quietly
    await client.silent(1.0)

    assert [frame["call_id"] for frame in client.frames if is_tool_call(frame)] == [call["call_id"]]
    assert [frame for frame in client.frames if frame["type"] == "error"] == []
    assert client.text == "The notes say hello." and client.logged[-1]["stop_reason"] == "completed"
    assert len(upstream.requests) == 2, "the result continued the turn once"
    tools = [m for m in upstream.requests[1]["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in tools] == [(call["call_id"], "hello")]
    assert_exactly_the_log(client, await logged(cluster, client.session_id))

    # The same result sent at once to both agent-runtimes (as two gateways would): one applies it.
    upstream.reply_tool_calls(("read_file", {"path": "todo.txt"}))
    upstream.reply_text("Nothing to do.")
    await client.say("And the todo list?", "m2")
    second = await client.until(is_tool_call)
    frame = {"type": "tool_result", "call_id": second["call_id"], "result": "empty"}
    answers = await asyncio.gather(*(post_input(agent, client.session_id, frame) for agent in cluster.agents))
    await client.until(is_final)

    assert sorted((status, body["status"]) for status, body in answers) == [(200, "accepted"), (200, "duplicate")]
    assert len(upstream.requests) == 4
    tools = [m for m in upstream.requests[3]["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tools] == [call["call_id"], second["call_id"]]
    assert [frame["call_id"] for frame in client.frames if is_tool_call(frame)] == [call["call_id"], second["call_id"]]
    assert_exactly_the_log(client, await logged(cluster, client.session_id))


async def test_llm_proxy_killed_mid_answer_ends_the_turn_and_the_next_works_after_its_restart(
    cluster: Cluster, new_client: Callable[[], Client]
) -> None:
    cluster.upstream.reply_text(ANSWER, chunk_delay=CHUNK_DELAY_S)
    client = new_client()
    await client.connect(cluster.gateways[0])
    await client.say("Tell me the story.", "m1")
    await client.deltas_at_least(5)

    await cluster.proxy.kill()
    final = await client.until(is_final)

    errors = [frame for frame in client.frames if frame["type"] == "error"]
    assert [(e["code"], "seq" in e) for e in errors] == [("LLM_ERROR", True)], errors
    assert final["stop_reason"] == "error" and client.logged[-2] == errors[0]
    shown = client.text
    assert shown and ANSWER.startswith(shown) and shown != ANSWER
    assert (await history(cluster.agents[0], client.session_id))[-1] == {"role": "assistant", "content": shown}

    await cluster.proxy.start()
    cluster.upstream.reply_text("I am back.")
    await client.say("Are you back?", "m2")
    second = await client.until(is_final)

    assert second["stop_reason"] == "completed"
    assert text_of(turn_of(client.logged, "m2")) == "I am back."
    assistant = [m["content"] for m in cluster.upstream.requests[-1]["messages"] if m["role"] == "assistant"]
    assert assistant == [shown], "the model sees what the user was shown of the cut answer"
    assert_exactly_the_log(client, await logged(cluster, client.session_id))


async def test_a_pause_of_the_whole_host_costs_no_turn(cluster: Cluster, new_client: Callable[[], Client]) -> None:
    """Every agent-runtime stopped past the lease (a host suspended, a VM paused) wakes to find the lease "expired";
    the holder renews it before the other believes it dead, and the answer goes on to its end."""
    cluster.upstream.reply_text(ANSWER, chunk_delay=CHUNK_DELAY_S)
    client = new_client()
    await client.connect(cluster.gateways[0])
    await client.say("Tell me the story.", "m1")
    await client.deltas_at_least(5)

    processes = [agent.process for agent in cluster.agents if agent.process is not None]
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    try:
        await asyncio.sleep(LEASE_TTL_S * 2)
    finally:
        for process in processes:
            process.send_signal(signal.SIGCONT)
    final = await client.until(is_final, timeout=20)

    assert final["stop_reason"] == "completed" and final["message_id"] == "m1"
    assert [frame for frame in client.logged if frame["type"] == "error"] == []
    assert client.text == ANSWER
    assert_exactly_the_log(client, await logged(cluster, client.session_id))


async def test_a_paused_agent_runtime_is_fenced_out_once_the_other_closed_its_turn(
    cluster: Cluster, new_client: Callable[[], Client]
) -> None:
    """A hung instance (SIGSTOP) loses its lease as a dead one does; when it wakes it writes nothing more to the
    session, and serves it again for the next message."""
    cluster.upstream.reply_text(ANSWER, chunk_delay=CHUNK_DELAY_S)
    client = new_client()
    await client.connect(cluster.gateways[0])
    await client.say("Tell me the story.", "m1")
    await client.deltas_at_least(5)

    owner = await lease_owner(cluster, client.session_id)
    assert owner is not None
    driver = cluster.driver(owner)
    paused = cluster.agents[driver]
    assert paused.process is not None
    paused.process.send_signal(signal.SIGSTOP)
    try:
        await client.connect(cluster.gateways[1 - driver], last_seq=client.last_seq)
        final = await client.until(is_final, timeout=LEASE_TTL_S + 10)
        closed = await logged(cluster, client.session_id)
    finally:
        paused.process.send_signal(signal.SIGCONT)
    await asyncio.sleep(LEASE_TTL_S)  # it wakes mid-step: its renewal and its writes find the lease taken

    assert await logged(cluster, client.session_id) == closed, "the woken instance wrote nothing more"
    await client.silent(0.5)
    assert final["stop_reason"] == "error" and client.logged[-2]["code"] == "AGENT_DOWN"
    shown = client.text
    assert shown and ANSWER.startswith(shown) and shown != ANSWER
    assert (await history(paused, client.session_id))[-1] == {"role": "assistant", "content": shown}
    assert_exactly_the_log(client, closed)

    cluster.upstream.reply_text("Awake again.")
    await client.connect(cluster.gateways[driver], last_seq=client.last_seq)
    await client.say("Are you awake?", "m2")
    second = await client.until(is_final)

    assert second["stop_reason"] == "completed"
    assert text_of(turn_of(client.logged, "m2")) == "Awake again."
    assert await lease_owner(cluster, client.session_id) is None
    assert_exactly_the_log(client, await logged(cluster, client.session_id))


async def test_the_other_agent_runtime_closes_the_turn_of_a_killed_one(
    cluster: Cluster, new_client: Callable[[], Client]
) -> None:
    cluster.upstream.reply_text(ANSWER, chunk_delay=CHUNK_DELAY_S)
    client = new_client()
    await client.connect(cluster.gateways[0])
    await client.say("Tell me the story.", "m1")
    await client.deltas_at_least(5)

    owner = await lease_owner(cluster, client.session_id)
    assert owner is not None, "the step holds the session's lease"
    driver = cluster.driver(owner)
    survivor = 1 - driver
    killed_at = time.monotonic()
    await cluster.agents[driver].kill()
    if driver == 0:  # the client's gateway follows the dead one: it says so (no seq); go to the survivor's
        down = await client.until(lambda frame: frame["type"] == "error")
        assert down["code"] == "AGENT_DOWN" and "seq" not in down, down
    await client.connect(cluster.gateways[survivor], last_seq=client.last_seq)
    final = await client.until(is_final, timeout=LEASE_TTL_S + 10)
    closed_after = time.monotonic() - killed_at

    assert final["stop_reason"] == "error" and final["message_id"] == "m1"
    error = client.logged[-2]
    assert error["type"] == "error" and error["code"] == "AGENT_DOWN" and error["message_id"] == "m1", error
    shown = client.text
    assert shown and ANSWER.startswith(shown) and shown != ANSWER
    messages = await history(cluster.agents[survivor], client.session_id)
    assert messages[-1] == {"role": "assistant", "content": shown}, "the history ends with what the client saw"
    assert await lease_owner(cluster, client.session_id) is None
    assert_exactly_the_log(client, await logged(cluster, client.session_id))

    cluster.upstream.reply_text("Still here.")
    await client.say("Are you still there?", "m2")
    second = await client.until(is_final)

    assert second["stop_reason"] == "completed"
    assert text_of(turn_of(client.logged, "m2")) == "Still here."
    assistant = [m["content"] for m in cluster.upstream.requests[-1]["messages"] if m["role"] == "assistant"]
    assert assistant == [shown]
    assert_exactly_the_log(client, await logged(cluster, client.session_id))
    print(f"turn closed {closed_after:.1f} s after the kill (lease {LEASE_TTL_S} s)")
