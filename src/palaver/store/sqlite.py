"""The embedded SQLite store (aiosqlite): the zero-configuration default.

SQLite allows one writer at a time. Writes therefore go through a single connection
behind an :class:`asyncio.Lock` and open with ``BEGIN IMMEDIATE``, so a write never
discovers half-way that another holds the lock ("database is locked"); another process
on the same file waits up to ``busy_timeout``. Reads use a pool of their own connections,
which WAL mode lets run alongside the writer on a consistent snapshot.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import PrimaryKeyConstraint, Table, UniqueConstraint, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.dml import Insert

from palaver.store.schema import metadata
from palaver.store.sql import SqlStore

# How long a write waits for another process holding the write lock before it reports
# the store unavailable: longer than any single group commit should ever take.
BUSY_TIMEOUT_MS = 10_000

_UNIQUE_FAILED = re.compile(r"UNIQUE constraint failed: ([\w., ]+)")


def _constraints_by_columns() -> dict[tuple[str, ...], str]:
    """``("users.email",) -> "uq_users_email"``: SQLite names columns, not constraints."""
    found: dict[tuple[str, ...], str] = {}
    for table in metadata.tables.values():
        for constraint in table.constraints:
            if not isinstance(constraint, UniqueConstraint | PrimaryKeyConstraint):
                continue
            columns = tuple(f"{table.name}.{c.name}" for c in constraint.columns)
            if isinstance(constraint.name, str) and columns:
                found[columns] = constraint.name
    return found


_CONSTRAINTS = _constraints_by_columns()


class SqliteStore(SqlStore):
    """A store in one SQLite file (or in memory for ``sqlite:///:memory:``).

    ``url`` is ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
    ``sqlite:///:memory:``; the file's directory is created on :meth:`connect`.
    ``pool_size`` bounds the reader connections.
    """

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        super().__init__()
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            raise ValueError(f"not a SQLite URL: {parsed.drivername}://…")
        database = parsed.database or ""
        self.memory = database in ("", ":memory:")
        self.path: Path | None = None if self.memory else Path(database)
        self._url = parsed.set(drivername="sqlite+aiosqlite")
        self._pool_size = max(1, pool_size)
        self._writer: AsyncEngine | None = None
        self._reader: AsyncEngine | None = None
        self._write_lock = asyncio.Lock()

    @property
    def engine(self) -> AsyncEngine:
        if self._writer is None:
            raise RuntimeError("SqliteStore.connect() has not been called")
        return self._writer

    async def connect(self) -> None:
        if self.memory:
            # One connection or each would see its own empty database.
            shared = create_async_engine(self._url, poolclass=StaticPool)
            _configure(shared, begin="BEGIN IMMEDIATE")
            self._writer = self._reader = shared
            return
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = create_async_engine(self._url, pool_size=1, max_overflow=0)
        _configure(self._writer, begin="BEGIN IMMEDIATE")
        self._reader = create_async_engine(self._url, pool_size=self._pool_size, max_overflow=0)
        _configure(self._reader, begin="BEGIN")

    async def close(self) -> None:
        for engine in {self._writer, self._reader}:
            if engine is not None:
                await engine.dispose()
        self._writer = self._reader = None

    @asynccontextmanager
    async def _connection(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        if self._writer is None or self._reader is None:
            raise RuntimeError("SqliteStore.connect() has not been called")
        if write or self.memory:
            # In memory, readers share the writer's connection and so its transaction.
            async with self._write_lock, self._writer.begin() as conn:
                yield conn
        else:
            async with self._reader.begin() as conn:
                yield conn

    def _insert_ignore(self, table: Table, *index_elements: str) -> Insert:
        return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(index_elements))

    def _constraint_name(self, exc: IntegrityError) -> str | None:
        match = _UNIQUE_FAILED.search(str(exc.orig))
        if match is None:
            return None
        columns = tuple(part.strip() for part in match.group(1).split(","))
        return _CONSTRAINTS.get(columns)


def _configure(engine: AsyncEngine, *, begin: str) -> None:
    """Set the pragmas on every new connection and take over transaction control."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below): sqlite3's own handling defers it to
        # the first write and so breaks snapshot reads and transactional DDL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            # FULL syncs the WAL on every commit: an acknowledged message survives a
            # power cut, not only a crash of the process.
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)
