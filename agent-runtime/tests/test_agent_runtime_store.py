"""The session store on SQLite and the real PostgreSQL: the lease fences out a holder that lost it, the log keeps
order, and a database made before the event log is upgraded in place."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from codelab_agent_runtime.models.session import SessionState
from codelab_agent_runtime.store.backends import SqliteBackend
from codelab_agent_runtime.store.database import create_engine
from codelab_agent_runtime.store.schema import sessions_table
from codelab_agent_runtime.store.sessions import LeaseLost, SqlSessionStore

POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlSessionStore]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite" else POSTGRES_URL
    store = SqlSessionStore(url)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def _session_id() -> str:
    return f"store-{uuid.uuid4().hex[:12]}"


async def test_a_holder_whose_lease_was_taken_over_cannot_write(store: SqlSessionStore) -> None:
    session_id = _session_id()
    first = await store.acquire(session_id, "instance-a", ttl_s=0.2)
    assert first is not None
    assert await store.acquire(session_id, "instance-b", ttl_s=5) is None, "held: nobody else gets it"
    await store.append(first, 0, [(1, '{"seq":1}')])

    await asyncio.sleep(0.3)  # instance-a pauses past its lease
    assert await store.acquire(session_id, "instance-b", ttl_s=5) is None, "expired is not free"
    _, expired = await store.due(time.time())
    (seen,) = [lease for lease in expired if lease.session_id == session_id]
    second = await store.acquire(session_id, "instance-b", ttl_s=5, dead=seen)
    assert second is not None and second.token > first.token
    with pytest.raises(LeaseLost):
        await store.append(first, 1, [(2, '{"seq":2,"from":"a"}')])
    with pytest.raises(LeaseLost):
        await store.renew(first, 5)
    await store.append(second, 1, [(2, '{"seq":2,"from":"b"}')], state=SessionState(session_id=session_id))

    assert await store.events_after(session_id, 0) == [(1, '{"seq":1}'), (2, '{"seq":2,"from":"b"}')]
    stored = await store.load(session_id)
    assert stored is not None and stored.last_seq == 2 == stored.state_seq
    await store.delete(session_id)


async def test_a_lease_seen_expired_is_kept_by_a_holder_that_renewed_it_since(store: SqlSessionStore) -> None:
    """A holder that wakes from a pause and renews before the taker acts keeps its lease: the takeover names the
    lease exactly as it was seen expired."""
    session_id = _session_id()
    holder = await store.acquire(session_id, "instance-a", ttl_s=0.1)
    assert holder is not None
    await asyncio.sleep(0.2)
    _, expired = await store.due(time.time())
    (seen,) = [lease for lease in expired if lease.session_id == session_id]
    assert await store.renew(holder, 5) is False

    assert await store.acquire(session_id, "instance-b", ttl_s=5, dead=seen) is None
    await store.append(holder, 0, [(1, "{}")], release=True)
    assert await store.acquire(session_id, "instance-b", ttl_s=5, dead=seen) is None, "a stale sighting takes nothing"
    assert await store.acquire(session_id, "instance-b", ttl_s=5) is not None, "released: free for anyone"
    await store.delete(session_id)


async def test_a_write_must_continue_the_log_where_it_ends(store: SqlSessionStore) -> None:
    session_id = _session_id()
    lease = await store.acquire(session_id, "instance-a", ttl_s=5)
    assert lease is not None
    await store.append(lease, 0, [(1, "{}"), (2, "{}")])
    with pytest.raises(LeaseLost):
        await store.append(lease, 1, [(2, "{}")])  # a stale view of the log's end writes nothing
    await store.append(lease, 2, [(3, "{}")], release=True)
    assert [seq for seq, _ in await store.events_after(session_id, 1)] == [2, 3]
    assert await store.acquire(session_id, "instance-b", ttl_s=5) is not None, "released with the last write"
    await store.delete(session_id)


async def test_a_cancel_request_reaches_the_holder_at_its_next_renewal(store: SqlSessionStore) -> None:
    session_id = _session_id()
    lease = await store.acquire(session_id, "instance-a", ttl_s=5)
    assert lease is not None
    assert await store.renew(lease, 5) is False
    assert await store.request_cancel(session_id) is True
    assert await store.renew(lease, 5) is True
    await store.release(lease)
    assert await store.request_cancel(session_id) is False, "nobody drives the session: nothing to tell"
    await store.delete(session_id)


async def test_a_database_from_before_the_event_log_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE agent_sessions (session_id VARCHAR(128) PRIMARY KEY, state JSON NOT NULL, "
            "updated_at DATETIME NOT NULL)"
        )
        state = SessionState(session_id="kept", messages=[{"role": "user", "content": "hi"}])
        old.execute(
            "INSERT INTO agent_sessions VALUES (?, ?, '2026-01-01 00:00:00')", ("kept", state.model_dump_json())
        )
    store = SqlSessionStore(f"sqlite+aiosqlite:///{path}")
    await store.start()
    try:
        stored = await store.load("kept")
        assert stored is not None and stored.state.messages == state.messages and stored.last_seq == 0
        lease = await store.acquire("kept", "instance-a", ttl_s=5)
        assert lease is not None
        await store.append(lease, 0, [(1, "{}")])
    finally:
        await store.close()
    with sqlite3.connect(path) as upgraded:
        assert upgraded.execute("SELECT version_num FROM alembic_version").fetchall() == [("0003",)]


async def test_a_write_cancelled_midway_still_finishes_and_leaves_the_database_writable(
    store: SqlSessionStore,
) -> None:
    """A lease renewal (or any write) cancelled inside its transaction used to leave SQLite's write lock held: every
    other write then waited out the 5 s busy timeout and failed."""
    held, other = _session_id(), _session_id()
    lease = await store.acquire(held, "instance-a", ttl_s=5)
    assert lease is not None
    taken = await store.acquire(other, "instance-b", ttl_s=5)
    assert taken is not None
    for attempt in range(36):
        renewal = asyncio.create_task(store.renew(lease, 5))
        for _ in range(attempt % 12):  # cancel it at a different point of its transaction each time
            await asyncio.sleep(0)
        renewal.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewal
        started = asyncio.get_running_loop().time()
        await store.renew(taken, 5)
        assert asyncio.get_running_loop().time() - started < 1.0, f"a write waited on a lock (attempt {attempt})"
    assert await store.renew(lease, 5) is False, "the cancelled renewals did their work"
    await store.delete(held)
    await store.delete(other)


async def test_a_failed_sqlite_write_is_undone_whole_and_the_next_one_works(tmp_path: Path) -> None:
    """SQLite's statements run on the event loop in one transaction per write block: a block that fails leaves
    nothing of itself behind and no transaction open; a block waits (asleep) while another process holds the lock."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'backend.db'}"
    schema = SqlSessionStore(url)
    await schema.start()
    await schema.close()
    backend = SqliteBackend(str(tmp_path / "backend.db"), create_engine(url).dialect)
    row = {"session_id": "undone", "state": {}, "updated_at": datetime.now(UTC), "last_seq": 0, "state_seq": 0}
    try:
        with pytest.raises(RuntimeError):
            async with backend.write() as connection:
                await connection.execute(insert(sessions_table), {**row, "lease_token": 0, "cancel_requested": False})
                raise RuntimeError("the block fails after its first statement")
        async with backend.read() as connection:
            assert (await connection.execute(select(sessions_table.c.session_id))).all() == []

        other = sqlite3.connect(tmp_path / "backend.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process writing
        asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        started = time.monotonic()
        async with backend.write() as connection:
            await connection.execute(insert(sessions_table), {**row, "lease_token": 0, "cancel_requested": False})
        other.close()
        assert 0.25 <= time.monotonic() - started < 3, "it waited for the lock, then wrote"
        async with backend.read() as connection:
            assert [r.session_id for r in await connection.execute(select(sessions_table.c.session_id))] == ["undone"]
    finally:
        await backend.close()
