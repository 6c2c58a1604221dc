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
from palaver.store.search import SEARCH_TABLES
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


def _engine_specific(conn: Connection) -> frozenset[str]:
    """The search tables, which ``metadata`` cannot describe (an FTS5 virtual table, a
    generated tsvector with operator-class indexes): ``test_search_objects`` checks
    them instead, so each is compared exactly once."""
    return SEARCH_TABLES[conn.dialect.name]


def _diff(conn: Connection) -> list[Any]:
    skip = _engine_specific(conn)

    def include_name(name: str | None, type_: str, parent: Any) -> bool:
        return not (type_ == "table" and name in skip)

    context = MigrationContext.configure(conn, opts={"include_name": include_name})
    return list(compare_metadata(context, metadata))


def _names(conn: Connection) -> dict[str, Any]:
    inspector = inspect(conn)
    found: dict[str, Any] = {}
    skip = _engine_specific(conn)
    for table in inspector.get_table_names():
        if table == "alembic_version" or table in skip:
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


def _search_objects(conn: Connection) -> dict[str, Any]:
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(
            "SELECT type, name, sql FROM sqlite_master WHERE name LIKE 'message_search%'"
        ).all()
        tables = {name for kind, name, _ in rows if kind == "table"}
        sql = {name: " ".join(str(text).split()) for _, name, text in rows}
        return {
            "tables": tables,
            "virtual": sql["message_search"],
            "trigger": sql["message_search_forget"],
        }
    inspector = inspect(conn)
    extensions = conn.exec_driver_sql("SELECT extname FROM pg_extension").scalars().all()
    indexes = conn.exec_driver_sql(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'message_search'"
    ).all()
    return {
        "tables": {t for t in inspector.get_table_names() if t.startswith("message_search")},
        "columns": {c["name"]: str(c["type"]) for c in inspector.get_columns("message_search")},
        "foreign_keys": [
            (fk["referred_table"], fk["options"].get("ondelete"))
            for fk in inspector.get_foreign_keys("message_search")
        ],
        "trgm": "pg_trgm" in extensions,
        "indexes": {name: definition.split(" USING ")[1] for name, definition in indexes},
    }


async def test_search_objects(fresh_url: str) -> None:
    """What the migration builds outside ``metadata``, checked engine by engine."""
    store = await _open(fresh_url)
    try:
        await store.migrate()
        async with store.engine.connect() as conn:
            found = await conn.run_sync(_search_objects)
            assert found["tables"] == SEARCH_TABLES[conn.dialect.name]
        if fresh_url.startswith("sqlite"):
            assert found["virtual"] == (
                "CREATE VIRTUAL TABLE message_search USING fts5(body, tokenize = 'trigram')"
            )
            assert found["trigger"] == (
                "CREATE TRIGGER message_search_forget AFTER DELETE ON messages "
                "BEGIN DELETE FROM message_search WHERE rowid = old.id; END"
            )
        else:
            assert found["columns"] == {
                "message_id": "BIGINT",
                "conversation_id": "BIGINT",
                "sender_id": "BIGINT",
                "created_at": "BIGINT",
                "body": "TEXT",
                "words": "TSVECTOR",
            }
            assert found["foreign_keys"] == [("messages", "CASCADE")]
            assert found["trgm"]
            assert found["indexes"] == {
                "pk_message_search": "btree (message_id)",
                "ix_message_search_body": "gin (body gin_trgm_ops)",
                "ix_message_search_words": "gin (words)",
                "ix_message_search_conversation": "btree (conversation_id, message_id)",
                "ix_message_search_recent": (
                    "btree (conversation_id, message_id) INCLUDE (sender_id, created_at, body)"
                    " WHERE (octet_length(body) <= 2000)"
                ),
                "ix_message_search_long": (
                    "btree (conversation_id, message_id) WHERE (octet_length(body) > 2000)"
                ),
            }
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
