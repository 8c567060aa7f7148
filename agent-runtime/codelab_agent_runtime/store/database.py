"""The database behind the store: an async engine for the URL (SQLite by default, PostgreSQL through asyncpg) and
its schema brought to the newest migration at start.

A database made before migrations existed (the sessions table and no `alembic_version`) is stamped with the first
revision, so the next ones upgrade it in place. On PostgreSQL, instances that start together migrate one at a time
(an advisory lock held until the migration commits), so the later ones find the schema made instead of failing to
create it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"
FIRST_REVISION = "0001"
MIGRATION_LOCK = 0x636F64656C6162
"""The PostgreSQL advisory lock key that serializes migrations (any fixed number; this one spells "codelab")."""


def create_engine(database_url: str) -> AsyncEngine:
    url = make_url(database_url)
    is_sqlite = url.get_backend_name() == "sqlite"
    if is_sqlite and url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, json_serializer=_json_dumps, json_deserializer=_json_text, **_pool(url))
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", lambda connection, _: tune_sqlite(connection))
    return engine


async def migrate(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    tables = inspect(connection).get_table_names()
    if "agent_sessions" in tables and "alembic_version" not in tables:
        command.stamp(config, FIRST_REVISION)
    command.upgrade(config, "head")


def _pool(url: URL) -> dict[str, Any]:
    """Connections for the followers' reads as well as the writes (a thousand followers catch up at once); on
    SQLite the engine only migrates (`backends.SqliteBackend` runs the statements)."""
    return {"pool_size": 20, "max_overflow": 40}


def _json_dumps(value: Any) -> str:
    """JSON for a JSON column; an `orjson.Fragment` (the session state, serialised by itself) goes in as it is."""
    return orjson.dumps(value).decode()


def _json_text(text: str) -> str:
    """JSON columns are read as their text: the session state parses itself (`SessionState.from_json`)."""
    return text


def tune_sqlite(dbapi_connection: Any, busy_timeout_ms: int = 5000) -> None:
    """WAL lets readers (event followers, GET /agent/sessions) run beside a writer; busy_timeout rides out short
    write locks; NORMAL sync is durable across a crash of the process (not of the machine) and much cheaper."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    cursor.close()
