"""Engine specifics: URLs, durability settings, errors, reconnection, timing hook."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import NewMessage, Role
from palaver.store import StoreUnavailable, create_store
from palaver.store.base import CursorUpdate
from palaver.store.postgres import PostgresStore
from palaver.store.sql import SqlStore
from palaver.store.sqlite import SqliteStore

from .helpers import T0, room, user


async def test_ping(store: SqlStore) -> None:
    await store.ping()


async def test_on_txn_observes_named_transactions(store: SqlStore) -> None:
    seen: list[tuple[str, float]] = []
    store.on_txn = lambda name, seconds: seen.append((name, seconds))
    await user(store, "alice")
    await store.get_user(1)
    assert [name for name, _ in seen] == ["create_user", "get_user"]
    assert all(seconds >= 0 for _, seconds in seen)


async def test_failing_on_txn_hook_does_not_fail_the_write(
    store: SqlStore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(name: str, seconds: float) -> None:
        raise RuntimeError("metrics down")

    store.on_txn = broken
    alice = await user(store, "alice")
    store.on_txn = None
    assert await store.get_user(alice.id) == alice
    assert "on_txn hook failed for create_user" in caplog.text


# -- create_store ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("sqlite:///var/p.db", SqliteStore),
        ("sqlite:////tmp/p.db", SqliteStore),
        ("sqlite:///:memory:", SqliteStore),
        ("postgresql://u:pw@db:5432/palaver", PostgresStore),
        ("postgres://u:pw@db/palaver", PostgresStore),
        ("postgresql+asyncpg://u@db/palaver", PostgresStore),
    ],
)
def test_create_store_schemes(url: str, kind: type[SqlStore]) -> None:
    store = create_store(url, pool_size=3)
    assert isinstance(store, kind)
    if isinstance(store, PostgresStore):
        assert store._url.drivername == "postgresql+asyncpg"
        assert store._pool_size == 3


@pytest.mark.parametrize(
    "url", ["mysql://u:secret@h/db", "redis://h", "palaver.db", "u:secret@h/db", ""]
)
def test_create_store_refuses_other_schemes(url: str) -> None:
    with pytest.raises(ValueError, match=r"sqlite:///.*postgresql://.*postgres://") as caught:
        create_store(url)
    assert "secret" not in str(caught.value)


# -- SQLite ----------------------------------------------------------------------------


async def _roundtrip(url: str) -> None:
    store = create_store(url)
    await store.connect()
    try:
        await store.migrate()
        alice = await user(store, "alice")
        assert await store.get_user(alice.id) == alice
    finally:
        await store.close()


async def test_sqlite_relative_path_creates_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await _roundtrip("sqlite:///var/data/palaver.db")
    assert (tmp_path / "var" / "data" / "palaver.db").is_file()


async def test_sqlite_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "abs" / "palaver.db"
    await _roundtrip(f"sqlite:///{path}")  # sqlite:////tmp/...: four slashes
    assert path.is_file()


async def test_sqlite_memory_shares_one_database() -> None:
    store = SqliteStore("sqlite:///:memory:")
    await store.connect()
    try:
        await store.migrate()
        alice = await user(store, "alice")
        general = await room(store, "general", alice)

        async def write(i: int) -> None:
            await store.append_messages([NewMessage(general.id, alice.id, str(i))], T0)

        await asyncio.gather(*(write(i) for i in range(10)), store.list_user_conversations(1))
        assert [m.seq for m in await store.get_messages(general.id)] == list(range(1, 11))
    finally:
        await store.close()


@pytest.fixture
async def sqlite_file(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A migrated store in ``tmp_path / "p.db"``, closed after the test."""
    store = SqliteStore(f"sqlite:///{tmp_path / 'p.db'}")
    await store.connect()
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


async def test_sqlite_durability_settings(tmp_path: Path) -> None:
    store = SqliteStore(f"sqlite:///{tmp_path / 'p.db'}")
    await store.connect()
    try:
        for write in (True, False):
            async with store._connection(write=write) as conn:
                assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
                assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
                assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
                assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 10_000
    finally:
        await store.close()


async def test_sqlite_append_connection_settings(tmp_path: Path) -> None:
    """The append path's own connection is as durable as the engine's."""
    store = SqliteStore(f"sqlite:///{tmp_path / 'p.db'}")
    await store.connect()
    try:
        db = store._appender
        assert db is not None
        pragmas = ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
        assert [db.execute(f"PRAGMA {name}").fetchone()[0] for name in pragmas] == [
            "wal",
            2,  # FULL
            1,
            10_000,
        ]
    finally:
        await store.close()
    assert store._appender is None


async def test_sqlite_index_pass_leaves_the_append_connection_syncing(
    sqlite_file: SqliteStore, tmp_path: Path
) -> None:
    """An indexer pass commits without an fsync of its own, on the append path's
    connection; afterwards (and after a pass that failed) message commits sync again."""
    store = sqlite_file
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    await store.append_messages([NewMessage(general.id, alice.id, "findable words")], T0)
    db = store._appender
    assert db is not None
    progress = await store.index_pending()
    assert progress.indexed == 1
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    await store.append_messages([NewMessage(general.id, alice.id, "more")], T0)
    other = sqlite3.connect(tmp_path / "p.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the pass cannot take the write lock
    db.execute("PRAGMA busy_timeout=50")
    with pytest.raises(StoreUnavailable):
        await store.index_pending()
    other.execute("ROLLBACK")
    other.close()
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert not db.in_transaction


async def test_sqlite_message_commits_sync_whatever_the_connection_was_left_at(
    sqlite_file: SqliteStore,
) -> None:
    """Should an index pass ever fail to set its connection back to FULL, the next
    message commit still syncs (and clears a transaction left open)."""
    store = sqlite_file
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    db = store._appender
    assert db is not None
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("BEGIN")
    [sent] = await store.append_messages([NewMessage(general.id, alice.id, "x")], T0)
    assert sent.message.seq == 1
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert not db.in_transaction


async def test_sqlite_cursor_flush_takes_the_append_path(
    sqlite_file: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Receipt flushes run on the append path's connection, as one syncing transaction,
    with the same rules as every engine (forward only, capped at the last message)."""
    store = sqlite_file
    alice = await user(store, "alice")
    bob = await user(store, "bob")
    general = await room(store, "general", alice)
    await store.add_member(general.id, bob.id, Role.MEMBER, T0)
    await store.append_messages([NewMessage(general.id, alice.id, str(i)) for i in range(3)], T0)

    async def no_engine(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cursor flush went through the engine")

    with monkeypatch.context() as patched:
        patched.setattr(store, "_txn", no_engine)
        changed = await store.advance_cursors(
            [
                CursorUpdate(general.id, alice.id, read_seq=2, delivered_seq=None),
                CursorUpdate(general.id, alice.id, read_seq=None, delivered_seq=9),
                CursorUpdate(general.id, bob.id, read_seq=None, delivered_seq=1),
            ]
        )
        assert await store.advance_cursors([]) == []
    assert {(m.user_id, m.read_seq, m.delivered_seq) for m in changed} == {
        (alice.id, 2, 3),
        (bob.id, 0, 1),
    }
    for m in changed:
        assert await store.get_member(general.id, m.user_id) == m
    db = store._appender
    assert db is not None
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert not db.in_transaction
    # Nothing moves backwards, and an unchanged cursor is not reported.
    assert await store.advance_cursors([CursorUpdate(general.id, alice.id, 1, 1)]) == []


async def test_sqlite_append_waits_for_another_writer(
    sqlite_file: SqliteStore, tmp_path: Path
) -> None:
    """A write transaction of another process holds the file: the append waits for it
    (busy_timeout) and numbers after what it committed."""
    store = sqlite_file
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    other = sqlite3.connect(tmp_path / "p.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE conversations SET last_seq = 7 WHERE id = ?", (general.id,))
    sending = asyncio.create_task(
        store.append_messages([NewMessage(general.id, alice.id, "x")], T0)
    )
    await asyncio.sleep(0.2)
    assert not sending.done()
    other.execute("COMMIT")
    other.close()
    [sent] = await sending
    assert sent.message.seq == 8


async def test_sqlite_append_integrity_error_is_a_conflict(
    sqlite_file: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unique violation on the append path is a CONFLICT on client_msg_id, and the
    transaction is rolled back."""
    store = sqlite_file
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    await store.append_messages([NewMessage(general.id, alice.id, "a", client_msg_id="c")], T0)
    monkeypatch.setattr(store, "_find_client_ids_sync", lambda db, batch: {})
    with pytest.raises(PalaverError) as caught:
        await store.append_messages([NewMessage(general.id, alice.id, "b", client_msg_id="c")], T0)
    assert (caught.value.code, caught.value.field) == (ErrorCode.CONFLICT, "client_msg_id")
    conversation = await store.get_conversation(general.id)
    assert conversation is not None
    assert conversation.last_seq == 1
    assert store._appender is not None
    assert not store._appender.in_transaction


async def test_sqlite_two_stores_on_one_file(tmp_path: Path) -> None:
    """Two processes sharing a file wait for each other instead of failing."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    first, second = SqliteStore(url), SqliteStore(url)
    await first.connect()
    await second.connect()
    try:
        await first.migrate()
        await second.migrate()
        alice = await user(first, "alice")
        general = await room(first, "general", alice)

        async def write(s: SqliteStore, i: int) -> None:
            await s.append_messages([NewMessage(general.id, alice.id, str(i))], T0)

        await asyncio.gather(*(write((first, second)[i % 2], i) for i in range(30)))
        assert [m.seq for m in await second.get_messages(general.id)] == list(range(1, 31))
    finally:
        await first.close()
        await second.close()


# -- PostgreSQL ------------------------------------------------------------------------


async def test_postgres_unreachable_raises_store_unavailable(
    unused_tcp_port: int,
) -> None:
    store = PostgresStore(
        f"postgresql+asyncpg://postgres@127.0.0.1:{unused_tcp_port}/palaver", connect_timeout=2
    )
    await store.connect()
    try:
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            await store.get_user(1)
        with pytest.raises(StoreUnavailable):
            await store.append_messages([NewMessage(1, 1, "lost")], T0)
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_synchronous_commit_is_on(postgres_url: str) -> None:
    store = PostgresStore(postgres_url)
    await store.connect()
    try:
        async with store.engine.connect() as conn:
            assert (await conn.execute(text("SHOW synchronous_commit"))).scalar() == "on"
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_append_recovers_after_connections_drop(postgres_url: str) -> None:
    """The append path keeps its connection between batches; a server restart (every
    connection cut) must not fail the next append."""
    store, admin = PostgresStore(postgres_url, pool_size=2), PostgresStore(postgres_url)
    await store.connect()
    await admin.connect()
    try:
        async with admin.engine.begin() as conn:
            await conn.execute(text("TRUNCATE users, conversations RESTART IDENTITY CASCADE"))
        alice = await user(store, "alice")
        general = await room(store, "general", alice)
        await store.append_messages([NewMessage(general.id, alice.id, "before")], T0)
        async with admin.engine.begin() as conn:
            killed = await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name = 'palaver'"
                )
            )
            assert len(killed.all()) >= 1
        kept = store._lanes[0].conn
        assert kept is not None
        driver = (await kept.get_raw_connection()).driver_connection
        assert driver is not None
        for _ in range(500):  # until the client has noticed the closed socket
            if driver.is_closed():
                break
            await asyncio.sleep(0.01)
        [sent] = await store.append_messages([NewMessage(general.id, alice.id, "after")], T0)
        assert sent.message.seq == 2
    finally:
        await store.close()
        await admin.close()


@asynccontextmanager
async def postgres_room(
    url: str, *, pool_size: int
) -> AsyncIterator[tuple[PostgresStore, int, int]]:
    """A connected store on emptied tables, alice's id and the id of her room."""
    store = PostgresStore(url, pool_size=pool_size)
    await store.connect()
    try:
        async with store.engine.begin() as conn:
            await conn.execute(text("TRUNCATE users, conversations RESTART IDENTITY CASCADE"))
        alice = await user(store, "alice")
        general = await room(store, "general", alice)
        yield store, alice.id, general.id
    finally:
        await store.close()


@pytest.mark.postgres
async def test_postgres_append_keeps_its_connection_after_refusing_a_batch(
    postgres_url: str,
) -> None:
    """A batch refused by the checks in its transaction (an upload gone) leaves the
    append path's connection as it was: rolled back, kept for the next batch."""
    async with postgres_room(postgres_url, pool_size=2) as (store, alice, general):
        await store.append_messages([NewMessage(general, alice, "first")], T0)
        kept = store._lanes[0].conn
        assert kept is not None
        gone = NewMessage(general, alice, "", attachments=({"id": 404, "name": "x"},))
        with pytest.raises(PalaverError) as refusal:
            await store.append_messages([gone], T0)
        assert refusal.value.code is ErrorCode.NOT_FOUND
        assert store._lanes[0].conn is kept
        [sent] = await store.append_messages([NewMessage(general, alice, "next")], T0)
        assert sent.message.seq == 2


@pytest.mark.postgres
async def test_postgres_append_with_a_pool_of_one(postgres_url: str) -> None:
    """With one connection the append path gives it back after each batch."""
    async with postgres_room(postgres_url, pool_size=1) as (store, alice, general):
        for i in range(3):
            await store.append_messages([NewMessage(general, alice, str(i))], T0)
            assert await store.get_conversation(general) is not None
        assert [m.seq for m in await store.get_messages(general)] == [1, 2, 3]


@pytest.mark.postgres
async def test_postgres_pool_recovers_after_connections_drop(postgres_url: str) -> None:
    """What a server restart looks like to the pool: every connection is cut."""
    store, admin = PostgresStore(postgres_url, pool_size=2), PostgresStore(postgres_url)
    await store.connect()
    await admin.connect()
    try:
        await asyncio.gather(store.ping(), store.ping())  # fill the pool
        async with admin.engine.begin() as conn:
            killed = await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name = 'palaver'"
                )
            )
            assert len(killed.all()) >= 2
        await asyncio.gather(store.ping(), store.ping())
    finally:
        await store.close()
        await admin.close()


async def test_sqlite_cancelled_append_keeps_the_write_lock_until_its_thread_is_done(
    sqlite_file: SqliteStore,
) -> None:
    """A caller cancelled while its transaction runs on the append thread leaves, but
    the write lock stays taken until that transaction has ended: no other write of this
    process may overlap it."""
    store = sqlite_file
    release = threading.Event()

    def blocked(db: sqlite3.Connection) -> str:
        release.wait(5)
        return "done"

    task = asyncio.create_task(store._on_append_thread("blocked", blocked))
    for _ in range(100):
        if store._write_lock.locked():
            break
        await asyncio.sleep(0.01)
    assert store._write_lock.locked()
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()
    assert store._write_lock.locked()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not store._write_lock.locked()
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    [sent] = await store.append_messages([NewMessage(general.id, alice.id, "after")], T0)
    assert sent.message.seq == 1


async def test_sqlite_a_write_waiting_while_the_store_closes_fails_instead_of_hanging(
    tmp_path: Path,
) -> None:
    """A write queued behind the write lock when the store closes gets an error once
    the lock is free, rather than waiting forever on a thread that has ended."""
    store = SqliteStore(f"sqlite:///{tmp_path / 'p.db'}")
    await store.connect()
    await store._write_lock.acquire()
    waiting = asyncio.create_task(
        store._on_append_thread("late", lambda db: db.execute("SELECT 1").fetchone())
    )
    await asyncio.sleep(0.05)
    await store.close()
    store._write_lock.release()
    with pytest.raises(RuntimeError, match="stopped"):
        await asyncio.wait_for(waiting, 5)
