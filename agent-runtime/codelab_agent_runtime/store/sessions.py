"""Sessions and their event logs in SQL, with the lease that lets exactly one instance drive a session's turn.

A session's row holds its state (one JSON document: history and the turn in progress), the end of its event log
(`last_seq`), and its lease. To change a session an instance first takes the lease, which hands it a new
`lease_token` (the fencing token). Every later write names that token and the `last_seq` it expects, in one
conditional UPDATE in the same transaction as the events it appends, so an instance that lost the lease (paused,
cut off, its lease expired and taken) can no longer write: its UPDATE matches no row and it gets `LeaseLost`.
A lease that looks expired is taken over only by naming it exactly as it was seen (token and end), so a holder that
renewed it meanwhile keeps it; when to believe it expired is the taker's decision (`turns/expiry.py`).

The statements a turn runs are built once, with bound parameters (`p_...`), so a call costs SQLAlchemy a cache
lookup rather than building and keying a new statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Update, and_, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from codelab_agent_runtime.models.session import SessionState
from codelab_agent_runtime.store.backends import Backend, Connection, EngineBackend, SqliteBackend, sqlite_path
from codelab_agent_runtime.store.database import create_engine, migrate
from codelab_agent_runtime.store.schema import events_table, sessions_table

Event = tuple[int, str]
"""One logged frame: its seq and its JSON text (which carries the same seq)."""


class LeaseLost(Exception):
    """The session's lease was taken by another holder (or expired and was taken); nothing was written."""


@dataclass(slots=True)
class StoredSession:
    state: SessionState
    last_seq: int
    state_seq: int
    lease_owner: str | None
    lease_until: float | None
    cancel_requested: bool


@dataclass(frozen=True, slots=True)
class HeldLease:
    """A lease as another instance saw it: which holder's (its token) and until when (by the holder's clock)."""

    session_id: str
    token: int
    until: float


@dataclass(frozen=True, slots=True)
class Lease:
    session_id: str
    token: int
    taken: StoredSession | None = field(default=None, compare=False)
    """The session as it was when the lease was taken (read in the same statement)."""


class SqlSessionStore:
    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._backend: Backend | None = None

    async def _write[T](self, work: Coroutine[Any, Any, T]) -> T:
        """Run one write transaction to its end even when the caller is cancelled meanwhile: a transaction cut by a
        cancellation could leave the database's write lock held, and every other writer would wait for it."""
        task = asyncio.ensure_future(work)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                await task
            raise

    @property
    def _db(self) -> Backend:
        if self._backend is None:
            raise RuntimeError("the session store is not started")
        return self._backend

    async def start(self) -> None:
        """Connect and bring the schema to the newest migration."""
        engine = create_engine(self._url)
        await migrate(engine)
        path = sqlite_path(self._url)
        if path is None:
            self._backend = EngineBackend(engine)
            return
        self._backend = SqliteBackend(path, engine.dialect)
        await engine.dispose()

    async def close(self) -> None:
        if self._backend is not None:
            await self._backend.close()
            self._backend = None

    async def ping(self) -> None:
        async with self._db.read() as connection:
            await connection.execute(_PING)

    # --- reading ---------------------------------------------------------------------------------------------------

    async def load(self, session_id: str) -> StoredSession | None:
        async with self._db.read() as connection:
            row = (await connection.execute(_LOAD, {"p_session_id": session_id})).first()
        return None if row is None else _stored(session_id, row)

    async def events_after(self, session_id: str, after: int, limit: int = 500) -> list[Event]:
        params = {"p_session_id": session_id, "p_after": after, "p_limit": limit}
        async with self._db.read() as connection:
            return [(row.seq, row.frame) for row in await connection.execute(_EVENTS_AFTER, params)]

    async def due(self, now: float) -> tuple[list[str], list[HeldLease]]:
        """Sessions whose tool calls are overdue (and no one holds them), and leases that look expired at `now`."""
        async with self._db.read() as connection:
            timed_out = [row.session_id for row in await connection.execute(_OVERDUE, {"p_now": now})]
            rows = (await connection.execute(_EXPIRED, {"p_now": now})).all()
        return timed_out, [HeldLease(row.session_id, row.lease_token, row.lease_until) for row in rows]

    # --- the lease -------------------------------------------------------------------------------------------------

    async def acquire(
        self, session_id: str, owner: str, ttl_s: float, *, dead: HeldLease | None = None
    ) -> Lease | None:
        """Take the session's lease if no one holds it, or, given `dead`, if it is still exactly that lease (its
        holder has not renewed it since), reading the session in the same statement; None when someone holds it.
        A session seen for the first time gets its row."""
        return await self._write(self._acquire(session_id, owner, ttl_s, dead))

    async def _acquire(self, session_id: str, owner: str, ttl_s: float, dead: HeldLease | None) -> Lease | None:
        now = time.time()
        async with self._db.write() as connection:
            if dead is not None:
                row = await _take(connection, _TAKE_DEAD, session_id, owner, now, ttl_s, dead)
                return None if row is None else Lease(session_id, row.lease_token, _stored(session_id, row))
            row = await _take(connection, _TAKE, session_id, owner, now, ttl_s)
            if row is None:
                exists = await connection.execute(_EXISTS, {"p_session_id": session_id})
                if exists.first() is not None:
                    return None
                try:
                    async with connection.savepoint():
                        await connection.execute(_INSERT_SESSION, {"session_id": session_id, **_new_row(now)})
                except IntegrityError:
                    pass  # made meanwhile by another instance; the update below decides who holds it
                row = await _take(connection, _TAKE, session_id, owner, now, ttl_s)
        if row is None:
            return None
        return Lease(session_id, row.lease_token, _stored(session_id, row))

    async def renew(self, lease: Lease, ttl_s: float) -> bool:
        """Extend the lease (LeaseLost when it was lost); answers whether a cancel was requested meanwhile."""
        return await self._write(self._renew(lease, ttl_s))

    async def _renew(self, lease: Lease, ttl_s: float) -> bool:
        fence = {"p_session_id": lease.session_id, "p_token": lease.token}
        async with self._db.write() as connection:
            row = (await connection.execute(_RENEW, {**fence, "p_until": time.time() + ttl_s})).first()
        if row is None:
            raise LeaseLost(lease.session_id)
        return bool(row.cancel_requested)

    async def release(self, lease: Lease) -> None:
        await self._write(self._release(lease))

    async def _release(self, lease: Lease) -> None:
        async with self._db.write() as connection:
            await connection.execute(_RELEASE, {"p_session_id": lease.session_id, "p_token": lease.token})

    async def request_cancel(self, session_id: str) -> bool:
        """Ask the instance driving the session's turn to cancel it; False when no one drives it."""
        return await self._write(self._request_cancel(session_id))

    async def _request_cancel(self, session_id: str) -> bool:
        async with self._db.write() as connection:
            result = await connection.execute(_REQUEST_CANCEL, {"p_session_id": session_id})
        return bool(result.rowcount)

    # --- writing ---------------------------------------------------------------------------------------------------

    async def append(
        self,
        lease: Lease,
        expected_seq: int,
        events: Sequence[Event],
        *,
        state: SessionState | None = None,
        deadline: float | None = None,
        release: bool = False,
    ) -> None:
        """Append `events` (seq expected_seq+1, ...) and, when given, the new state, in one transaction fenced by
        the lease; `release` lets go of the lease in the same write."""
        await self._write(self._append(lease, expected_seq, events, state, deadline, release))

    async def _append(
        self,
        lease: Lease,
        expected_seq: int,
        events: Sequence[Event],
        state: SessionState | None,
        deadline: float | None,
        release: bool,
    ) -> None:
        values: dict[str, Any] = {
            "p_session_id": lease.session_id,
            "p_token": lease.token,
            "p_expected": expected_seq,
            "p_last_seq": events[-1][0] if events else expected_seq,
        }
        if state is not None:
            state.updated_at = time.time()
            values |= {
                "p_state": orjson.Fragment(state.to_json()),
                "p_updated_at": datetime.fromtimestamp(state.updated_at, UTC),
                "p_deadline": deadline,
            }
        async with self._db.write() as connection:
            updated = await connection.execute(_append_statement(state is not None, release), values)
            if updated.rowcount != 1:
                raise LeaseLost(lease.session_id)
            if events:
                rows = [{"session_id": lease.session_id, "seq": seq, "frame": text} for seq, text in events]
                await connection.execute(_INSERT_EVENTS, rows)

    # --- ownership -------------------------------------------------------------------------------------------------

    async def claim(self, session_id: str, principal: str) -> bool:
        """Whether the session is `principal`'s, making it theirs when it does not exist yet."""
        owner = await self._principal(session_id)
        if owner is _ABSENT:
            owner = await self._write(self._create_owned(session_id, principal))
        return owner == principal

    async def _principal(self, session_id: str) -> str | object | None:
        async with self._db.read() as connection:
            row = (await connection.execute(_PRINCIPAL, {"p_session_id": session_id})).first()
        return _ABSENT if row is None else row.principal

    async def _create_owned(self, session_id: str, principal: str) -> str | None:
        async with self._db.write() as connection:
            try:
                async with connection.savepoint():
                    row = {"session_id": session_id, "principal": principal, **_new_row(time.time())}
                    await connection.execute(_INSERT_SESSION, row)
            except IntegrityError:
                pass  # made meanwhile: whoever made it owns it
            owner = (await connection.execute(_PRINCIPAL, {"p_session_id": session_id})).first()
        return None if owner is None else owner.principal

    async def delete(self, session_id: str) -> bool:
        return await self._write(self._delete(session_id))

    async def _delete(self, session_id: str) -> bool:
        async with self._db.write() as connection:
            await connection.execute(_DELETE_EVENTS, {"p_session_id": session_id})
            gone = await connection.execute(_DELETE_SESSION, {"p_session_id": session_id})
        return bool(gone.rowcount)


_SESSION_COLUMNS = (
    sessions_table.c.state,
    sessions_table.c.last_seq,
    sessions_table.c.state_seq,
    sessions_table.c.lease_owner,
    sessions_table.c.lease_until,
    sessions_table.c.cancel_requested,
    sessions_table.c.lease_token,
)


_columns = sessions_table.c
_BY_ID = _columns.session_id == bindparam("p_session_id")
_FENCE = and_(_BY_ID, _columns.lease_token == bindparam("p_token"))

_PING = select(1)
_LOAD = select(*_SESSION_COLUMNS).where(_BY_ID)
_EVENTS_AFTER = (
    select(events_table.c.seq, events_table.c.frame)
    .where(events_table.c.session_id == bindparam("p_session_id"), events_table.c.seq > bindparam("p_after"))
    .order_by(events_table.c.seq)
    .limit(bindparam("p_limit"))
)
_OVERDUE = (
    select(_columns.session_id).where(_columns.deadline < bindparam("p_now"), _columns.lease_owner.is_(None)).limit(100)
)
_EXPIRED = (
    select(_columns.session_id, _columns.lease_token, _columns.lease_until)
    .where(_columns.lease_owner.is_not(None), _columns.lease_until < bindparam("p_now"))
    .limit(100)
)
_INSERT_SESSION = insert(sessions_table)
_REQUEST_CANCEL = update(sessions_table).where(_BY_ID, _columns.lease_owner.is_not(None)).values(cancel_requested=True)
_DELETE_EVENTS = delete(events_table).where(events_table.c.session_id == bindparam("p_session_id"))
_DELETE_SESSION = delete(sessions_table).where(_BY_ID)
_EXISTS = select(_columns.session_id).where(_BY_ID)
_PRINCIPAL = select(_columns.principal).where(_BY_ID)
_ABSENT = object()
_TAKEN = {
    "lease_owner": bindparam("p_owner"),
    "lease_until": bindparam("p_until"),
    "lease_token": _columns.lease_token + 1,
    "cancel_requested": False,
}
_TAKE = update(sessions_table).where(_BY_ID, _columns.lease_owner.is_(None)).values(_TAKEN).returning(*_SESSION_COLUMNS)
_TAKE_DEAD = (
    update(sessions_table)
    .where(_FENCE, _columns.lease_owner.is_not(None), _columns.lease_until == bindparam("p_seen_until"))
    .values(_TAKEN)
    .returning(*_SESSION_COLUMNS)
)
_RENEW = (
    update(sessions_table).where(_FENCE).values(lease_until=bindparam("p_until")).returning(_columns.cancel_requested)
)
_RELEASE = update(sessions_table).where(_FENCE).values(lease_owner=None, lease_until=None)
_INSERT_EVENTS = insert(events_table)


@functools.cache
def _append_statement(with_state: bool, release: bool) -> Update:
    """The fenced update of an append: matches only while the lease is held and the log ends where expected."""
    values: dict[str, Any] = {"last_seq": bindparam("p_last_seq")}
    if with_state:
        values |= {
            "state": bindparam("p_state", type_=_columns.state.type),
            "state_seq": bindparam("p_last_seq"),
            "updated_at": bindparam("p_updated_at", type_=_columns.updated_at.type),
            "deadline": bindparam("p_deadline", type_=_columns.deadline.type),
        }
    if release:
        values |= {"lease_owner": None, "lease_until": None}
    fenced = and_(_FENCE, _columns.last_seq == bindparam("p_expected"), _columns.lease_owner.is_not(None))
    return update(sessions_table).where(fenced).values(values)


async def _take(
    connection: Connection,
    statement: Update,
    session_id: str,
    owner: str,
    now: float,
    ttl_s: float,
    dead: HeldLease | None = None,
) -> Any:
    params: dict[str, Any] = {"p_session_id": session_id, "p_owner": owner, "p_until": now + ttl_s}
    if dead is not None:
        params |= {"p_token": dead.token, "p_seen_until": dead.until}
    return (await connection.execute(statement, params)).first()


def _state(session_id: str, text: str) -> SessionState:
    """The state from its JSON text (a new session's is `{}`)."""
    return SessionState(session_id=session_id) if text == "{}" else SessionState.from_json(text)


def _stored(session_id: str, row: Any) -> StoredSession:
    return StoredSession(
        state=_state(session_id, row.state),
        last_seq=row.last_seq,
        state_seq=row.state_seq,
        lease_owner=row.lease_owner,
        lease_until=row.lease_until,
        cancel_requested=bool(row.cancel_requested),
    )


def _new_row(now: float) -> dict[str, Any]:
    return {
        "state": {},
        "updated_at": datetime.fromtimestamp(now, UTC),
        "last_seq": 0,
        "state_seq": 0,
        "lease_token": 0,
        "cancel_requested": False,
    }
