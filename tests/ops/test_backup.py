"""`palaver backup` and `palaver restore` on SQLite and PostgreSQL: a round trip keeps
every row (users, sessions, conversations, memberships, cursors, messages, audit), a
backup taken during writes is one consistent snapshot, and a restore refuses to replace
a database in use."""

from __future__ import annotations

import asyncio
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from palaver.backup import BackupError, backup, find_pg_binary, restore
from palaver.cli import main
from palaver.config import Settings
from palaver.core.models import User
from palaver.services.container import Services, build_services
from palaver.store import create_store
from palaver.store.schema import metadata
from palaver.store.sql import SqlStore
from tests.deployment import PASSWORD
from tests.isolated import isolated_settings
from tests.services import in_ci

Snapshot = dict[str, list[tuple[Any, ...]]]


@dataclass
class Databases:
    engine: str
    live: str  # the database that serves
    fresh: str  # an empty one to restore into


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Databases:
    if request.param == "sqlite":
        return Databases(
            "sqlite",
            f"sqlite:///{tmp_path / 'live' / 'palaver.db'}",
            f"sqlite:///{tmp_path / 'fresh' / 'palaver.db'}",
        )
    make: Callable[[], str] = request.getfixturevalue("make_database")
    require_pg_tools()
    return Databases("postgresql", make(), make())


def require_pg_tools() -> None:
    """Fail (CI) or loudly skip (elsewhere) without pg_dump and pg_restore."""
    try:
        for tool in ("pg_dump", "pg_restore"):
            find_pg_binary(tool)
    except BackupError as exc:
        message = f"{exc} (`make service-deps` installs them)"
        if in_ci():
            pytest.fail(message + "; CI=true makes this a failure", pytrace=False)
        print(f"\n*** SKIPPING: {message} ***", file=sys.stderr)
        pytest.skip(f"*** {message} ***")


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`palaver` commands in this process read no settings but the flags given."""
    for key in [k for k in os.environ if k.startswith("PALAVER_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PALAVER_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("PALAVER_LOG_LEVEL", "warning")
    monkeypatch.chdir(tmp_path)


def settings_for(url: str, tmp_path: Path) -> Settings:
    return isolated_settings(
        tmp_path / "var",
        database_url=url,
        log_level="warning",
        rate_messages_burst=100_000,
        rate_messages_per_second=100_000.0,
    )


async def open_services(url: str, tmp_path: Path) -> Services:
    services = build_services(settings_for(url, tmp_path))
    await services.start()
    await services.store.migrate()
    return services


@dataclass
class Population:
    ada: User
    bob: User
    room: int
    direct: int
    group: int


async def populate(services: Services) -> Population:
    """Users (one deactivated), live and revoked sessions, a room, a direct and a group
    conversation with messages, and read and delivery cursors."""
    auth, conversations, messaging = services.auth, services.conversations, services.messaging
    ada = await auth.register(
        username="ada", email="ada@example.com", password=PASSWORD, is_admin=True
    )
    bob = await auth.register(username="bob", email=None, password=PASSWORD)
    cy = await auth.register(username="cy", email="cy@example.com", password=PASSWORD)
    dee = await auth.register(username="dee", email=None, password=PASSWORD)
    await auth.open_session(ada, ip="203.0.113.7", device="laptop")
    phone = await auth.open_session(ada, ip="198.51.100.2", device="phone")
    await auth.open_session(bob, ip="192.0.2.1", device="desktop")
    await auth.revoke_session(ada.id, phone.session.id, ip="198.51.100.2")
    await auth.set_active(dee.id, False, actor_id=ada.id)

    room = await conversations.create_room(ada, "general", "all things")
    await conversations.join_room(bob, room.id)
    await conversations.join_room(cy, room.id)
    direct, _ = await conversations.direct(ada, bob.id)
    group = await conversations.create_group(ada, "team", [bob.id, cy.id])
    for i in range(20):
        sender = (ada, bob, cy)[i % 3]
        await messaging.send(sender, room.id, f"room message {i} ✓", client_msg_id=f"r{i}")
    for i in range(5):
        await messaging.send((ada, bob)[i % 2], direct.id, f"direct {i}", client_msg_id=f"d{i}")
        await messaging.send(cy, group.id, f"group {i} https://example.com/a_b-c.txt")
    await messaging.mark(bob.id, room.id, 12, read=True)
    await messaging.mark(cy.id, room.id, 7, read=False)
    await messaging.mark(bob.id, direct.id, 3, read=False)
    await settle_receipts(services)
    return Population(ada, bob, room.id, direct.id, group.id)


async def settle_receipts(services: Services) -> None:
    """Wait until every queued cursor move is written.

    ``flush_receipts()`` alone is not enough: it returns at once while the background
    flush it races with is still writing the moves it took, so wait for that task too.
    """
    messaging = services.messaging
    while True:
        task = messaging._receipt_task
        if task is not None:
            await asyncio.wait([task])
        await messaging.flush_receipts()
        if messaging._receipt_task is None and not messaging._receipts:
            return


async def snapshot(url: str) -> Snapshot:
    """Every row of every table (and the schema version), in primary-key order."""
    store = create_store(url, pool_size=1)
    assert isinstance(store, SqlStore)
    await store.connect()
    found: Snapshot = {}
    try:
        async with store.engine.connect() as conn:
            for table in metadata.sorted_tables:
                query = select(table).order_by(*table.primary_key.columns)
                found[table.name] = [tuple(row) for row in (await conn.execute(query)).all()]
            version = await conn.execute(text("SELECT version_num FROM alembic_version"))
            found["alembic_version"] = [tuple(row) for row in version.all()]
    finally:
        await store.close()
    return found


def assert_consistent(rows: Snapshot) -> None:
    """Each conversation's messages are numbered 1..last_seq with no gap or extra."""
    columns = [c.name for c in metadata.tables["conversations"].columns]
    message_columns = [c.name for c in metadata.tables["messages"].columns]
    seqs: dict[int, list[int]] = {}
    for message in rows["messages"]:
        fields = dict(zip(message_columns, message, strict=True))
        seqs.setdefault(fields["conversation_id"], []).append(fields["seq"])
    for row in rows["conversations"]:
        conversation = dict(zip(columns, row, strict=True))
        expected = list(range(1, conversation["last_seq"] + 1))
        assert sorted(seqs.get(conversation["id"], [])) == expected, conversation


def cli(*args: str) -> int:
    return main(list(args))


async def test_round_trip_keeps_everything(
    databases: Databases,
    tmp_path: Path,
    cli_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    archive = tmp_path / "backups" / "palaver.backup"
    archive.parent.mkdir()
    services = await open_services(databases.live, tmp_path)
    try:
        people = await populate(services)
        before = await snapshot(databases.live)
        assert (
            await asyncio.to_thread(cli, "backup", str(archive), "--database-url", databases.live)
            == 0
        )
        assert f"backed up the {databases.engine} database" in capsys.readouterr().out
        # More happens after the backup: a restore must take it all back.
        for i in range(5):
            await services.messaging.send(people.bob, people.room, f"after {i}")
        await services.messaging.mark(people.ada.id, people.room, 25, read=True)
        await settle_receipts(services)
        await services.auth.register(username="late", email=None, password=PASSWORD)

        # The server still has the database open: a restore over it is refused.
        refused = await asyncio.to_thread(
            cli, "restore", str(archive), "--database-url", databases.live
        )
        assert refused == 1
        assert "in use" in capsys.readouterr().err
    finally:
        await services.close()

    # Into a fresh database, and back over the changed original.
    assert (
        await asyncio.to_thread(cli, "restore", str(archive), "--database-url", databases.fresh)
        == 0
    )
    assert (
        await asyncio.to_thread(cli, "restore", str(archive), "--database-url", databases.live) == 0
    )
    assert f"restored the {databases.engine} database" in capsys.readouterr().out
    assert all(before[table] for table in ("users", "sessions", "members", "messages"))
    assert await snapshot(databases.fresh) == before
    assert await snapshot(databases.live) == before

    # The restored database serves: history, cursors, sessions and logins are intact.
    services = await open_services(databases.fresh, tmp_path)
    try:
        bob = await services.store.get_member(people.room, people.bob.id)
        assert bob is not None
        assert (bob.read_seq, bob.delivered_seq) >= (12, 12)
        cy = await services.store.get_user_by_login("cy@example.com")
        assert cy is not None
        cy_member = await services.store.get_member(people.room, cy.id)
        assert cy_member is not None
        assert cy_member.delivered_seq >= 7
        page = await services.messaging.history(people.ada.id, people.room, after=0, limit=200)
        assert [m.seq for m in page.messages] == list(range(1, len(page.messages) + 1))
        assert [s.device for s in await services.store.list_sessions(people.ada.id)] == ["laptop"]
        login = await services.auth.login("ada", PASSWORD, ip="127.0.0.1")
        assert login.user.id == people.ada.id
        # New ids continue after the restored ones (sequences restored too).
        late = await services.auth.register(username="late", email=None, password=PASSWORD)
        assert late.id > max(row[0] for row in before["users"])
        sent = await services.messaging.send(people.bob, people.room, "after the restore")
        assert sent.message.seq == len(page.messages) + 1
    finally:
        await services.close()


async def test_backup_during_writes_is_one_snapshot(databases: Databases, tmp_path: Path) -> None:
    archive = tmp_path / "live.backup"
    services = await open_services(databases.live, tmp_path)
    stop = asyncio.Event()
    sent = 0

    async def write(sender: User, conversation_id: int, name: str) -> None:
        nonlocal sent
        while not stop.is_set():
            await services.messaging.send(sender, conversation_id, f"{name} {sent}")
            sent += 1

    try:
        people = await populate(services)
        writers = [
            asyncio.create_task(write(people.ada, people.room, "room")),
            asyncio.create_task(write(people.bob, people.direct, "direct")),
        ]
        await asyncio.sleep(0.2)
        before = sent
        await asyncio.to_thread(backup, databases.live, archive)
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.gather(*writers)
        assert sent > before  # the writers were not held up by the backup
    finally:
        await services.close()
    await asyncio.to_thread(restore, databases.fresh, archive)
    rows = await snapshot(databases.fresh)
    assert_consistent(rows)
    live = await snapshot(databases.live)
    assert_consistent(live)
    assert 0 < len(rows["messages"]) < len(live["messages"])


def test_restore_refuses_the_wrong_engine_and_bad_files(tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(BackupError, match="does not exist"):
        restore(sqlite_url, tmp_path / "missing")
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a backup at all")
    with pytest.raises(BackupError, match="neither a SQLite database nor a pg_dump"):
        restore(sqlite_url, junk)
    dump = tmp_path / "pg.backup"
    dump.write_bytes(b"PGDMP" + b"\0" * 64)
    with pytest.raises(BackupError, match="PostgreSQL backup but the database is SQLite"):
        restore(sqlite_url, dump)
    with pytest.raises(BackupError, match="does not exist"):
        backup(sqlite_url, tmp_path / "out")
    with pytest.raises(BackupError, match="directory"):
        backup(sqlite_url, tmp_path / "no" / "such" / "dir" / "out")
    with pytest.raises(BackupError, match="in-memory"):
        backup("sqlite:///:memory:", tmp_path / "out")
    assert not list(tmp_path.glob(".out.*"))  # no temporary file left behind


def test_missing_pg_tools_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("palaver.backup._PG_BIN_GLOB", "/nonexistent/*/bin")
    with pytest.raises(BackupError, match=r"pg_dump was not found .* postgresql-client"):
        find_pg_binary("pg_dump")


@pytest.mark.parametrize("force", [False, True])
def test_sqlite_restore_discards_the_replaced_databases_write_ahead_log(
    tmp_path: Path, force: bool
) -> None:
    db = tmp_path / "palaver.db"
    url = f"sqlite:///{db}"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.execute("INSERT INTO t VALUES ('backed up')")
    conn.commit()
    conn.close()
    backup(url, tmp_path / "archive")
    # A process commits and dies before any checkpoint: its write lives only in the WAL,
    # which SQLite would replay into whatever file is then at this path.
    crash = (
        "import os, sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1])\n"
        "conn.execute('PRAGMA wal_autocheckpoint=0')\n"
        "conn.execute(\"INSERT INTO t VALUES ('after the backup')\")\n"
        "conn.commit()\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", crash, str(db)], check=True)
    assert Path(f"{db}-wal").stat().st_size > 0
    restore(url, tmp_path / "archive", force=force)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT x FROM t").fetchall() == [("backed up",)]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()


@pytest.mark.postgres
def test_postgres_restore_into_a_missing_database_says_how_to_create_it(
    make_database: Callable[[], str], tmp_path: Path
) -> None:
    missing = make_database().rsplit("/", 1)[0] + f"/palaver_t_missing_{secrets.token_hex(4)}"
    dump = tmp_path / "pg.backup"
    dump.write_bytes(b"PGDMP" + b"\0" * 64)
    with pytest.raises(BackupError, match=r"does not exist: create it first \(createdb "):
        restore(missing, dump)
