"""The Alembic migrations build exactly ``schema.metadata``, on both engines."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Table, delete, func, insert, inspect, select, text, update

from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import MessageKind, NewMessage
from palaver.store.schema import (
    message_edits,
    messages,
    metadata,
    notice_names,
    pins,
    reactions,
    reports,
    thread_reads,
)
from palaver.store.search import SEARCH_TABLES
from palaver.store.sql import SqlStore, alembic_config

from .conftest import open_store
from .helpers import T0, room, send, user


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

        await store.downgrade("base")

        def tables(conn: Connection) -> list[str]:
            return [t for t in inspect(conn).get_table_names() if t != "alembic_version"]

        async with store.engine.connect() as conn:
            assert await conn.run_sync(tables) == []
        await store.migrate()
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await store.close()


_KEPT: tuple[Table, ...] = (messages, message_edits, reactions, pins, thread_reads)


async def _rows(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, list[tuple[Any, ...]]] = {}
    async with store.engine.connect() as conn:
        for table in _KEPT:
            stmt = select(table).order_by(*table.primary_key.columns)
            found[table.name] = [tuple(row) for row in await conn.execute(stmt)]
    return found


async def test_the_client_id_index_change_keeps_every_row_both_ways(fresh_url: str) -> None:
    """0009 (messages: client ids indexed only when given; SQLite ids never reused)
    copies the messages table on SQLite: every message, and every edit, reaction, pin
    and thread row pointing at one, survives it down and up again; foreign keys,
    deduplication and the search trigger work after it."""
    store = await _open(fresh_url)
    try:
        await store.migrate()
        alice = await user(store, "alice")
        bob = await user(store, "bob")
        general = await room(store, "general", alice, bob)
        sent = await send(
            store,
            general,
            alice,
            "one",
            "two",
            "three",
            "four",
            client_ids=["c1", None, "c3", None],
        )
        ids = [a.message.id for a in sent]
        async with store.engine.begin() as conn:
            await conn.execute(
                insert(message_edits).values(
                    message_id=ids[0], editor_id=alice.id, content="uno", edited_at=T0
                )
            )
            await conn.execute(
                insert(reactions).values(
                    message_id=ids[1], user_id=bob.id, emoji="+1", created_at=T0
                )
            )
            await conn.execute(
                insert(pins).values(
                    conversation_id=general.id, message_id=ids[2], pinned_by=alice.id, pinned_at=T0
                )
            )
            await conn.execute(
                insert(thread_reads).values(user_id=bob.id, root_id=ids[0], read_seq=1)
            )
        while (await store.index_pending(now=T0 + 60_000)).indexed:
            pass
        # A message after the indexer's pass is reported, then it and the one before it
        # go: the newest id is named only by the report, the one before it only by the
        # indexer's watermark.
        [reported] = await send(store, general, bob, "five")
        async with store.engine.begin() as conn:
            await conn.execute(
                insert(reports).values(
                    message_id=reported.message.id,
                    conversation_id=general.id,
                    reporter_id=alice.id,
                    reason="",
                    created_at=T0,
                )
            )
            await conn.execute(
                delete(messages).where(messages.c.id.in_([ids[3], reported.message.id]))
            )
        before = await _rows(store)
        assert [len(rows) for rows in before.values()] == [3, 1, 1, 1, 1]

        await store.downgrade("0008")
        assert await _rows(store) == before
        if fresh_url.startswith("sqlite"):
            # A row left dangling by a tool that enforces no keys does not stop the copy
            # (only a breakage of its own would).
            _dangle_a_member(fresh_url)
        await store.migrate()
        assert await _rows(store) == before
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []

        again = await send(
            store, general, alice, "one again", "five", "six", client_ids=["c1", None, None]
        )
        assert again[0].duplicate
        assert again[0].message.id == ids[0]
        # Past the deleted newest, which a report still names: never an id twice.
        assert reported.message.id < again[1].message.id < again[2].message.id
        async with store.engine.begin() as conn:
            await conn.execute(delete(messages).where(messages.c.id == ids[0]))
        after = await _rows(store)
        # Foreign keys are enforced again: the edit and thread row of "one" went with it.
        assert after["message_edits"] == []
        assert after["thread_reads"] == []
        assert len(after["reactions"]) == len(after["pins"]) == 1
        async with store.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                indexed = "SELECT count(*) FROM message_search WHERE rowid = :id"
            else:
                indexed = "SELECT count(*) FROM message_search WHERE message_id = :id"
            # The index forgets a deleted message (the SQLite trigger came back).
            assert (await conn.execute(text(indexed), {"id": ids[0]})).scalar() == 0
            assert (await conn.execute(text(indexed), {"id": ids[1]})).scalar() == 1
            assert (await conn.execute(select(func.count()).select_from(messages))).scalar() == 4
    finally:
        await store.close()


def _dangle_a_member(url: str) -> None:
    path = url.removeprefix("sqlite:///")
    db = sqlite3.connect(path, isolation_level=None)  # foreign keys off, as in the shell
    try:
        db.execute("DELETE FROM users WHERE username_norm = 'bob'")
        assert db.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        db.close()


async def test_messages_deleted_before_0011_lose_their_edit_texts(fresh_url: str) -> None:
    """A message deleted by an earlier release kept the texts of its edit entries and
    its edit history: 0011 empties them, and leaves those of live messages alone."""
    store = await _open(fresh_url)
    try:
        await store.migrate()
        alice = await user(store, "alice")
        general = await room(store, "general", alice)
        [gone, kept] = await send(store, general, alice, "original", "kept")
        await store.edit_message(gone.message.id, alice.id, "edited @alice", T0 + 1, ("alice",))
        await store.edit_message(kept.message.id, alice.id, "kept, edited", T0 + 2)
        await store.edit_message(gone.message.id, alice.id, "edited twice", T0 + 3)
        await store.downgrade("0010")
        # The earlier release's delete: the message row alone.
        async with store.engine.begin() as conn:
            await conn.execute(
                update(messages)
                .where(messages.c.id == gone.message.id)
                .values(content="", mentions=None, deleted_at=T0 + 4)
            )
        await store.migrate()

        stream = await store.get_messages(general.id)
        assert [(m.ref_id, m.content, m.mentions) for m in stream[2:]] == [
            (gone.message.id, "", ()),
            (kept.message.id, "kept, edited", ()),
            (gone.message.id, "", ()),
        ]
        assert await store.edit_history(gone.message.id) == []
        assert [e.content for e in await store.edit_history(kept.message.id)] == ["kept"]
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await store.close()


async def test_a_cancelled_migration_leaves_foreign_keys_enforced(
    fresh_sqlite_url: str,
) -> None:
    store = await _open(fresh_sqlite_url)
    try:
        await store.migrate()
        started = threading.Event()

        def slow(conn: Connection) -> None:
            started.set()
            time.sleep(0.3)

        task = asyncio.create_task(store._migration(slow))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
    finally:
        await store.close()


async def test_a_repeated_client_id_is_a_conflict_on_the_client_id(fresh_url: str) -> None:
    """Should two nodes race one retried send past the lookup, the unique index refuses
    the second copy, and the error names the field (append_messages then retries and
    finds the first)."""
    store = await _open(fresh_url)
    try:
        await store.migrate()
        alice = await user(store, "alice")
        general = await room(store, "general", alice)
        [first] = await send(store, general, alice, "hello", client_ids=["c1"])
        copy = {
            "conversation_id": general.id,
            "seq": first.message.seq + 1,
            "sender_id": alice.id,
            "kind": "text",
            "content": "hello",
            "client_msg_id": "c1",
            "created_at": T0,
        }

        async def txn(conn: Any) -> None:
            await conn.execute(insert(messages).values(copy))

        with pytest.raises(PalaverError) as refused:
            await store._txn("copy", txn)
        assert refused.value.code is ErrorCode.CONFLICT
        assert refused.value.field == "client_msg_id"
        # Without a client id, any number of messages of one sender are fine.
        await send(store, general, alice, "a", "b", "c")
    finally:
        await store.close()


async def test_client_ids_per_conversation_down_and_up(fresh_url: str) -> None:
    """0010: a client id is unique per sender and conversation. Going back to one per
    sender clears the later copies' client ids and keeps every message."""
    store = await _open(fresh_url)
    try:
        await store.migrate()
        alice = await user(store, "alice")
        one, two = await room(store, "one", alice), await room(store, "two", alice)
        [first] = await send(store, one, alice, "to one", client_ids=["1"])
        [second] = await send(store, two, alice, "to two", client_ids=["1"])
        assert not second.duplicate

        await store.downgrade("0009")
        async with store.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(messages.c.id, messages.c.content, messages.c.client_msg_id).order_by(
                        messages.c.id
                    )
                )
            ).all()
        assert [tuple(row) for row in rows] == [
            (first.message.id, "to one", "1"),
            (second.message.id, "to two", None),
        ]

        await store.migrate()
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
        [retry] = await send(store, one, alice, "to one again", client_ids=["1"])
        assert retry.duplicate
        assert retry.message.id == first.message.id
    finally:
        await store.close()


async def test_notices_stored_before_0012_get_the_places_of_their_names(fresh_url: str) -> None:
    """0012 reads the notices already stored with the shapes earlier releases wrote, and
    records a name where exactly one live account has it, so deleting that account
    takes it out of them too; a name several accounts share stays as it is."""
    store = await _open(fresh_url)
    try:
        await store.migrate()
        await store.downgrade("0011")
        alice = await user(store, "alice")  # display name "Alice"
        bob = await user(store, "bob")
        erin = await store.create_user(
            username="erin", email=None, display_name="Erin Q", password_hash="h"
        )
        for twin in ("carol", "dave"):
            await store.create_user(
                username=twin, email=None, display_name="Twin", password_hash="h"
            )
        general = await room(store, "general", alice, bob)
        legacy = [
            "Alice joined",
            "Bob made Alice admin",
            "Alice set the topic: Bob left",
            "Alice removed user 99",
            "erin joined",  # before she changed her display name
            "Twin joined",
            "Alice renamed the room to Alice's",
        ]
        await store.append_messages(
            [NewMessage(general.id, None, text, kind=MessageKind.SYSTEM) for text in legacy],
            T0,
        )
        await send(store, general, bob, "Alice joined")  # a message, not a notice

        await store.migrate()
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            places = (
                await conn.execute(
                    select(notice_names.c.start, notice_names.c.length, notice_names.c.user_id)
                    .join(messages, messages.c.id == notice_names.c.message_id)
                    .order_by(messages.c.seq, notice_names.c.start)
                )
            ).all()
        assert [tuple(p) for p in places] == [
            (0, 5, alice.id),
            (0, 3, bob.id),
            (9, 5, alice.id),
            (0, 5, alice.id),
            (0, 5, alice.id),
            (0, 4, erin.id),
            (0, 5, alice.id),
        ]
        await store.anonymise_user(alice.id, T0 + 1)
        await store.anonymise_user(erin.id, T0 + 1)
        assert [m.content for m in await store.get_messages(general.id)] == [
            "Deleted user joined",
            "Bob made Deleted user admin",
            "Deleted user set the topic: Bob left",
            "Deleted user removed user 99",
            "Deleted user joined",
            "Twin joined",
            "Deleted user renamed the room to Alice's",
            "Alice joined",
        ]
    finally:
        await store.close()


def _thread_index(conn: Connection) -> str:
    if conn.dialect.name == "sqlite":
        sql = conn.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE name = 'ix_messages_thread'"
        ).scalar_one()
    else:
        sql = conn.exec_driver_sql(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_messages_thread'"
        ).scalar_one()
    return " ".join(str(sql).split())


def _thread_plan(conn: Connection) -> str:
    """How a thread's replies are found (SQLite names the index it searches)."""
    if conn.dialect.name != "sqlite":
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        query = "EXPLAIN SELECT id FROM messages WHERE thread_root_id = :root ORDER BY seq"
        return " ".join(str(r) for r in conn.execute(text(query), {"root": 1}).scalars())
    query = "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE thread_root_id = :root ORDER BY seq"
    return " ".join(str(r[-1]) for r in conn.execute(text(query), {"root": 1}).all())


async def test_the_thread_index_holds_thread_replies_only(fresh_url: str) -> None:
    """Most messages are in no thread: they cost the thread index nothing, and thread
    lookups (a bound root id) still use it. Down to 0012 it is whole again."""
    store = await _open(fresh_url)
    try:
        await store.migrate()
        async with store.engine.begin() as conn:
            assert (await conn.run_sync(_thread_index)).endswith(
                "WHERE thread_root_id IS NOT NULL"
                if store.engine.dialect.name == "sqlite"
                else "WHERE (thread_root_id IS NOT NULL)"
            )
            assert "ix_messages_thread" in await conn.run_sync(_thread_plan)
        await store.downgrade("0012")
        async with store.engine.connect() as conn:
            assert "WHERE" not in await conn.run_sync(_thread_index)
        await store.migrate()
        async with store.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            assert "IS NOT NULL" in await conn.run_sync(_thread_index)
    finally:
        await store.close()


def _read_elsewhere(url: str) -> str:
    """Whether another connection can read messages now (within a second)."""
    import concurrent.futures

    import asyncpg  # type: ignore[import-untyped]

    async def probe() -> str:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://", 1))
        try:
            await conn.execute("SET lock_timeout = '1s'")
            await conn.fetch("SELECT id FROM messages ORDER BY id LIMIT 1")
            return "read"
        except asyncpg.exceptions.LockNotAvailableError:
            return "blocked"
        finally:
            await conn.close()

    # Its own thread and loop: the migration holds this one until the probe answers.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, probe()).result()


@pytest.mark.postgres
async def test_reads_go_on_while_0013_builds_the_thread_index(fresh_postgres_url: str) -> None:
    """Building the new index takes a lock that lets reads through; only the swap at the
    end (dropping the old one) locks reads out, until the upgrade commits."""
    from sqlalchemy import event

    store = await _open(fresh_postgres_url)
    try:
        await store.migrate()
        await store.downgrade("0012")
        seen: list[str] = []

        def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if statement.lstrip().upper().startswith("CREATE INDEX IX_MESSAGES_THREAD"):
                seen.append(_read_elsewhere(fresh_postgres_url))

        event.listen(store.engine.sync_engine, "after_cursor_execute", after)
        try:
            await store.migrate()
        finally:
            event.remove(store.engine.sync_engine, "after_cursor_execute", after)
        assert seen == ["read"]
    finally:
        await store.close()
