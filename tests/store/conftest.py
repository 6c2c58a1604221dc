"""The ``store`` fixture: every contract test runs on SQLite and on PostgreSQL.

SQLite tests get a copy of a file migrated once per session; PostgreSQL tests share one
migrated throwaway database, emptied before each test (much faster than migrating).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from palaver.store.postgres import PostgresStore
from palaver.store.schema import metadata
from palaver.store.sql import SqlStore
from palaver.store.sqlite import SqliteStore
from tests.services import create_database, drop_database

StoreFactory = Callable[[], Awaitable[SqlStore]]


def asyncpg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


def open_store(url: str, *, pool_size: int = 4) -> SqlStore:
    if url.startswith("sqlite"):
        return SqliteStore(url, pool_size=pool_size)
    return PostgresStore(url, pool_size=pool_size)


async def _migrate(url: str) -> None:
    store = open_store(url)
    await store.connect()
    try:
        await store.migrate()
    finally:
        await store.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "palaver.db"
    asyncio.run(_migrate(f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_url(postgres_database: str) -> str:
    url = asyncpg_url(postgres_database)
    asyncio.run(_migrate(url))
    return url


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database of the parametrized kind (sync, so session fixtures can
    call ``asyncio.run`` outside the test's event loop)."""
    if request.param == "sqlite":
        path = tmp_path / "palaver.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    return url


async def _truncate(store: SqlStore) -> None:
    names = ", ".join(table.name for table in metadata.sorted_tables)
    async with store.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    """An empty, migrated, connected store."""
    opened = open_store(store_url)
    await opened.connect()
    if isinstance(opened, PostgresStore):
        await _truncate(opened)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def more_stores(store: SqlStore, store_url: str) -> AsyncIterator[StoreFactory]:
    """Open further stores on the same database (like other processes would)."""
    opened: list[SqlStore] = []

    async def factory() -> SqlStore:
        other = open_store(store_url, pool_size=2)
        await other.connect()
        opened.append(other)
        return other

    try:
        yield factory
    finally:
        for other in opened:
            await other.close()


@pytest.fixture
def fresh_sqlite_url(tmp_path: Path) -> str:
    """An empty SQLite database, not migrated."""
    return f"sqlite:///{tmp_path / 'fresh' / 'palaver.db'}"


@pytest.fixture
def fresh_postgres_url(postgres_admin_url: str) -> Iterator[str]:
    """An empty PostgreSQL database of its own, not migrated, dropped afterwards."""
    url = create_database()
    yield asyncpg_url(url)
    drop_database(url)
