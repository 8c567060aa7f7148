"""Where session state lives between steps: an interface and its SQLAlchemy implementation.

State is one JSON document per session, so the schema never changes with the state's shape and the same table
works on SQLite (the default, a file next to the service) and PostgreSQL (`postgresql+asyncpg://...`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy import JSON, Column, DateTime, MetaData, String, Table, delete, event, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from codelab_agent_runtime.models.session import SessionState


class SessionStore(Protocol):
    async def start(self) -> None:
        """Connect and create what is missing (folder, table)."""

    async def close(self) -> None: ...

    async def load(self, session_id: str) -> SessionState | None: ...

    async def save(self, state: SessionState) -> None: ...

    async def delete(self, session_id: str) -> bool: ...

    async def ping(self) -> None:
        """Raise when the database does not answer."""


metadata = MetaData()
sessions_table = Table(
    "agent_sessions",
    metadata,
    Column("session_id", String(128), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


class SqlSessionStore:
    """Sessions in one table through SQLAlchemy's async engine."""

    def __init__(self, database_url: str) -> None:
        self._url = make_url(database_url)
        self._engine: AsyncEngine | None = None

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(select(1))

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the session store is not started")
        return self._engine

    async def start(self) -> None:
        is_sqlite = self._url.get_backend_name() == "sqlite"
        if is_sqlite and self._url.database and self._url.database != ":memory:":
            _create_parent_folder(self._url.database)
        engine = create_async_engine(self._url, json_serializer=_json_dumps, json_deserializer=orjson.loads)
        if is_sqlite:
            event.listen(engine.sync_engine, "connect", _tune_sqlite)
        async with engine.begin() as connection:
            await connection.run_sync(metadata.create_all)
        self._engine = engine

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    async def load(self, session_id: str) -> SessionState | None:
        async with self.engine.connect() as connection:
            query = select(sessions_table.c.state).where(sessions_table.c.session_id == session_id)
            document = (await connection.execute(query)).scalar_one_or_none()
        return None if document is None else SessionState.model_validate(document)

    async def save(self, state: SessionState) -> None:
        state.updated_at = time.time()
        values = {
            "state": state.model_dump(mode="json"),
            "updated_at": datetime.fromtimestamp(state.updated_at, UTC),
        }
        async with self.engine.begin() as connection:
            where = sessions_table.c.session_id == state.session_id
            updated = await connection.execute(update(sessions_table).where(where).values(**values))
            if updated.rowcount == 0:
                await connection.execute(insert(sessions_table).values(session_id=state.session_id, **values))

    async def delete(self, session_id: str) -> bool:
        async with self.engine.begin() as connection:
            where = sessions_table.c.session_id == session_id
            return bool((await connection.execute(delete(sessions_table).where(where))).rowcount)


def _create_parent_folder(database: str) -> None:
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _tune_sqlite(dbapi_connection: Any, _: Any) -> None:
    """WAL lets readers (GET /agent/sessions) run beside a writer; busy_timeout rides out short write locks."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
