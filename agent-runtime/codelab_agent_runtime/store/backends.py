"""How the store's statements reach the database: one interface, two ways.

The store builds its statements once with SQLAlchemy Core and runs them in `read()` and `write()` blocks (a write
block is one transaction). On PostgreSQL they go through SQLAlchemy's async engine (asyncpg). On SQLite they run on
two stdlib `sqlite3` connections (one writes, one reads) in the event loop's own thread: each statement is compiled
for SQLite once and then costs SQLite's own microseconds, where an async driver hands every call to a thread and
back (most of a turn's store cost, measured in docs/benchmarks.md). A write block has no await between its
statements, so nothing else in the loop sees it half done; the write lock is taken with `BEGIN IMMEDIATE`, and while
another process holds it the block waits by sleeping, never by blocking the loop. The WAL is checkpointed in a
worker thread (its fsync must not stall the loop), not by the committing write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import time
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Executable
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert

from codelab_agent_runtime.store.database import tune_sqlite

Params = dict[str, Any] | list[dict[str, Any]] | None
"""One statement's values, or a list of them (the statement runs once for each)."""


class Result(Protocol):
    @property
    def rowcount(self) -> int: ...

    def first(self) -> Any: ...

    def all(self) -> Sequence[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    async def execute(self, statement: Executable, params: Params = None) -> Result: ...

    def savepoint(self) -> contextlib.AbstractAsyncContextManager[None]:
        """A nested transaction: an error inside undoes only what was done inside."""
        ...


class Backend(Protocol):
    def read(self) -> contextlib.AbstractAsyncContextManager[Connection]: ...

    def write(self) -> contextlib.AbstractAsyncContextManager[Connection]: ...

    async def close(self) -> None: ...


# --- SQLAlchemy's async engine (PostgreSQL) --------------------------------------------------------------------------


class _EngineConnection:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def execute(self, statement: Executable, params: Params = None) -> Result:
        return await self._connection.execute(statement, params)

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        async with self._connection.begin_nested():
            yield


class EngineBackend:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        async with self.engine.connect() as connection:
            yield _EngineConnection(connection)

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        async with self.engine.begin() as connection:
            yield _EngineConnection(connection)

    async def close(self) -> None:
        await self.engine.dispose()


# --- SQLite on the event loop's thread -------------------------------------------------------------------------------

BUSY_WAIT_S = 5.0
"""How long a write waits for another process's write lock before it fails (as SQLite's busy_timeout did)."""
CHECKPOINT_EVERY_S = 1.0


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    """The bound parameters in the order of the SQL's `?` marks."""
    held: dict[str, Any]
    """The values the statement holds itself (literals, limits); the others are given with each call."""
    to_db: tuple[Callable[[Any], Any] | None, ...]
    from_db: tuple[Callable[[Any], Any] | None, ...]
    row: Callable[..., Any] | None
    """The row type of what the statement returns (fields named as its columns); None when it returns nothing."""

    def positional(self, params: dict[str, Any]) -> tuple[Any, ...]:
        held = self.held
        values = (params[name] if name in params else held[name] for name in self.names)
        return tuple(
            value if convert is None or value is None else convert(value)
            for value, convert in zip(values, self.to_db, strict=True)
        )

    def rows(self, raw: list[tuple[Any, ...]]) -> list[Any]:
        if self.row is None:
            return []
        converters = self.from_db
        return [
            self.row(*(v if c is None or v is None else c(v) for v, c in zip(values, converters, strict=True)))
            for values in raw
        ]


class _Rows:
    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def all(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class _SqliteConnection:
    def __init__(self, connection: sqlite3.Connection, compile_: Callable[..., _Compiled]) -> None:
        self._connection = connection
        self._compile = compile_
        self._savepoints = 0

    async def execute(self, statement: Executable, params: Params = None) -> Result:
        many = params if isinstance(params, list) else None
        one = params if isinstance(params, dict) else {}
        keys = tuple(many[0] if many else one) if isinstance(statement, Insert) else None
        compiled = self._compile(statement, keys)
        try:
            if many is not None:
                cursor = self._connection.executemany(compiled.sql, [compiled.positional(p) for p in many])
                return _Rows([], cursor.rowcount)
            cursor = self._connection.execute(compiled.sql, compiled.positional(one))
            rows = compiled.rows(cursor.fetchall()) if compiled.row is not None else []
            return _Rows(rows, cursor.rowcount)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(compiled.sql, None, exc) from exc

    @contextlib.asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        self._savepoints += 1
        name = f"s{self._savepoints}"
        self._connection.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self._connection.execute(f"ROLLBACK TO {name}")
            self._connection.execute(f"RELEASE {name}")
            raise
        self._connection.execute(f"RELEASE {name}")


class SqliteBackend:
    def __init__(self, path: str, dialect: Dialect) -> None:
        self._path = path
        self._dialect = dialect
        self._writer = self._connect(busy_timeout_ms=0)
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        self._reader = self._connect(busy_timeout_ms=1000)
        self._lock = asyncio.Lock()
        self._checkpoints = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-checkpoint")
        self._checkpointer = asyncio.get_running_loop().create_task(self._checkpoint_forever())
        self._compile = functools.lru_cache(maxsize=256)(self._compile_uncached)

    def _connect(self, *, busy_timeout_ms: int, same_thread: bool = True) -> sqlite3.Connection:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=same_thread)
        tune_sqlite(connection, busy_timeout_ms)
        return connection

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Connection]:
        yield _SqliteConnection(self._reader, self._compile)

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[Connection]:
        async with self._lock:
            await self._begin()
            try:
                yield _SqliteConnection(self._writer, self._compile)
                self._writer.execute("COMMIT")
            finally:
                if self._writer.in_transaction:  # the block failed, or its commit did (a full disk): undo it all
                    self._writer.execute("ROLLBACK")

    async def _begin(self) -> None:
        """Take SQLite's write lock, sleeping (never blocking the loop) while another process holds it."""
        deadline, pause = time.monotonic() + BUSY_WAIT_S, 0.001
        while True:
            try:
                self._writer.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() >= deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def _checkpoint_forever(self) -> None:
        loop = asyncio.get_running_loop()
        connection = await loop.run_in_executor(
            self._checkpoints, functools.partial(self._connect, busy_timeout_ms=0, same_thread=False)
        )
        try:
            while True:
                await asyncio.sleep(CHECKPOINT_EVERY_S)
                with contextlib.suppress(sqlite3.Error):
                    await loop.run_in_executor(self._checkpoints, connection.execute, "PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            await loop.run_in_executor(self._checkpoints, connection.close)

    async def close(self) -> None:
        self._checkpointer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._checkpointer
        self._checkpoints.shutdown(wait=True)
        self._reader.close()
        self._writer.close()

    def _compile_uncached(self, statement: ClauseElement, column_keys: tuple[str, ...] | None) -> _Compiled:
        dialect = self._dialect
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        assert isinstance(compiled, SQLCompiler)
        names = tuple(compiled.positiontup or ())
        to_db = tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
        columns = list(getattr(statement, "exported_columns", ()))
        row = namedtuple("Row", [column.key for column in columns], rename=True) if columns else None  # type: ignore[misc]
        from_db = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns)
        held = {name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required}
        return _Compiled(compiled.string, names, held, to_db, from_db, row)


def sqlite_path(database_url: str) -> str | None:
    """The file of a SQLite URL (None for another database, or an in-memory one: those go through the engine)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return str(Path(url.database).expanduser())
