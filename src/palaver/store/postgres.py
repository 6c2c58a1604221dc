"""The PostgreSQL store (asyncpg): several processes and nodes share one database.

Sequence numbers stay gapless across processes because ``append_messages`` locks the
conversation rows (``SELECT … FOR NO KEY UPDATE``, in id order) before it reads and bumps
``last_seq``: writers of one conversation take turns until each one commits.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from palaver.store.sql import SqlStore

# Any fixed 64-bit key works; this one spells "palaver" so that another application
# sharing the database is unlikely to pick it.
MIGRATION_LOCK_KEY = int.from_bytes(b"palaver", "big")

_CONSTRAINT = re.compile(r'constraint "([^"]+)"')


class PostgresStore(SqlStore):
    """A store in a PostgreSQL database.

    ``url`` is ``postgresql+asyncpg://user:password@host:port/database``. ``pool_size``
    is the most connections this process opens; ``connect_timeout`` (seconds) bounds
    each connection attempt so an unreachable server fails fast.
    """

    unavailable_errors = (
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.CannotConnectNowError,
        asyncpg.AdminShutdownError,
    )

    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout: float = 5.0) -> None:
        super().__init__()
        parsed = make_url(url)
        if parsed.drivername != "postgresql+asyncpg":
            raise ValueError(f"not a postgresql+asyncpg URL: {parsed.drivername}://…")
        self._url = parsed
        self._pool_size = max(1, pool_size)
        self._connect_timeout = connect_timeout
        self._engine: AsyncEngine | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("PostgresStore.connect() has not been called")
        return self._engine

    async def connect(self) -> None:
        self._engine = create_async_engine(
            self._url,
            pool_size=self._pool_size,
            # A hard cap: several processes share the server's max_connections.
            max_overflow=0,
            # Checks each connection as it leaves the pool, so connections left dead by
            # a server restart are replaced instead of failing one request each.
            pool_pre_ping=True,
            connect_args={
                "timeout": self._connect_timeout,
                "server_settings": {
                    # The default, but a server or role may lower it, and an ack must
                    # mean the WAL record is on disk.
                    "synchronous_commit": "on",
                    "application_name": "palaver",
                },
            },
        )

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @asynccontextmanager
    async def _connection(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    def _insert_ignore(self, table: Table, *index_elements: str) -> Insert:
        return pg_insert(table).on_conflict_do_nothing(index_elements=list(index_elements))

    def _constraint_name(self, exc: IntegrityError) -> str | None:
        name = getattr(exc.orig.__cause__, "constraint_name", None) if exc.orig else None
        if isinstance(name, str):
            return name
        match = _CONSTRAINT.search(str(exc.orig))
        return match.group(1) if match else None

    async def _before_migrate(self, conn: AsyncConnection) -> None:
        # Held until the migration commits: a second process starting at the same time
        # waits, then finds the schema at head and does nothing.
        await conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))
