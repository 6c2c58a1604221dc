"""The Alembic migrations build exactly ``schema.metadata``, on both engines."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect

from palaver.store.schema import metadata
from palaver.store.sql import SqlStore, alembic_config

from .conftest import open_store


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def fresh_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"fresh_{request.param}_url")
    return url


def _diff(conn: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(conn), metadata))


def _names(conn: Connection) -> dict[str, Any]:
    inspector = inspect(conn)
    found: dict[str, Any] = {}
    for table in inspector.get_table_names():
        if table == "alembic_version":
            continue
        found[table] = {
            "columns": sorted(c["name"] for c in inspector.get_columns(table)),
            "unique": sorted(str(u["name"]) for u in inspector.get_unique_constraints(table)),
            "indexes": sorted(
                str(i["name"])
                for i in inspector.get_indexes(table)
                if not i.get("duplicates_constraint")
            ),
        }
    return found


def _expected_names() -> dict[str, Any]:
    from sqlalchemy import Index, UniqueConstraint

    return {
        table.name: {
            "columns": sorted(table.columns.keys()),
            "unique": sorted(
                str(c.name) for c in table.constraints if isinstance(c, UniqueConstraint)
            ),
            "indexes": sorted(str(i.name) for i in table.indexes if isinstance(i, Index)),
        }
        for table in metadata.sorted_tables
    }


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def _open(url: str) -> SqlStore:
    store = open_store(url)
    await store.connect()
    return store


async def test_migrations_match_schema(fresh_url: str) -> None:
    store = await _open(fresh_url)
    try:
        await store.migrate()
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            assert await conn.run_sync(_names) == _expected_names()
            assert await conn.run_sync(_revision) == _head()
    finally:
        await store.close()


async def test_migrate_twice_is_a_no_op(fresh_url: str) -> None:
    store = await _open(fresh_url)
    try:
        await store.migrate()
        await store.create_user(username="a", email=None, display_name="", password_hash="h")
        await store.migrate()
        assert [u.username for u in await store.list_users()] == ["a"]
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_revision) == _head()
    finally:
        await store.close()


async def test_concurrent_migrations(fresh_url: str) -> None:
    """Processes starting together: one migrates, the others wait and find it done."""
    stores = [await _open(fresh_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
        async with stores[0].engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        for store in stores:
            await store.close()


async def test_downgrade_and_upgrade_again(fresh_url: str) -> None:
    store = await _open(fresh_url)
    try:
        await store.migrate()

        def downgrade(conn: Connection) -> list[str]:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
            return [t for t in inspect(conn).get_table_names() if t != "alembic_version"]

        async with store.engine.begin() as conn:
            assert await conn.run_sync(downgrade) == []
        await store.migrate()
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await store.close()
