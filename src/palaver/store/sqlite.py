"""The embedded SQLite store (aiosqlite): the zero-configuration default.

SQLite allows one writer at a time. Writes therefore go through a single connection
behind an :class:`asyncio.Lock` and open with ``BEGIN IMMEDIATE``, so a write never
discovers half-way that another holds the lock ("database is locked"); another process
on the same file waits up to ``busy_timeout``. Reads use a pool of their own connections,
which WAL mode lets run alongside the writer on a consistent snapshot.

``append_messages``, the hot path, skips SQLAlchemy: a plain ``sqlite3`` connection of
its own (same pragmas, same lock, ``BEGIN IMMEDIATE`` too) runs a whole group commit as
one call on a thread of its own, with fixed SQL and ``executemany``. The search
indexer's pass and the receipt flush, which every message also goes through, take the
same road.
"""

from __future__ import annotations

import asyncio
import functools
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Table, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.dml import Insert

from palaver.core.errors import not_found
from palaver.core.models import (
    Appended,
    Member,
    Message,
    MessageKind,
    NewMessage,
    now_ms,
)
from palaver.core.search import IndexProgress
from palaver.store.base import CursorUpdate
from palaver.store.rich import RichSqlStore
from palaver.store.search import (
    INDEX_BATCH,
    WATERMARK,
    Original,
    PendingEntry,
    SqliteSearch,
    edit_targets,
    plan_index,
)
from palaver.store.sql import (
    MEMBER_COLUMNS,
    MESSAGE_COLUMNS,
    AppendPlan,
    ClientKey,
    CursorTargets,
    chunks,
    cursor_targets,
    dedup_key,
    encode_attachments,
    encode_mentions,
    member_from_columns,
    message_from_columns,
    moved_cursor,
    named_uploads,
    require_uploads,
    unique_keys,
)
from palaver.store.worker import WorkerThread

# How long a write waits for another process holding the write lock before it reports
# the store unavailable: longer than any single group commit should ever take.
BUSY_TIMEOUT_MS = 10_000

T = TypeVar("T")

_UNIQUE_FAILED = re.compile(r"UNIQUE constraint failed: ([\w., ]+)")


def _constraints_by_columns() -> dict[tuple[str, ...], str]:
    """``("users.email",) -> "uq_users_email"``: SQLite names columns, not constraints
    (nor unique indexes)."""
    return {
        tuple(f"{table.name}.{c.name}" for c in columns): name
        for table, name, columns in unique_keys()
    }


_CONSTRAINTS = _constraints_by_columns()


class SqliteStore(SqliteSearch, RichSqlStore):
    """A store in one SQLite file (or in memory for ``sqlite:///:memory:``).

    ``url`` is ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
    ``sqlite:///:memory:``; the file's directory is created on :meth:`connect`.
    ``pool_size`` bounds the reader connections.
    """

    #: The append path's own connection raises plain ``sqlite3`` errors.
    unavailable_errors = (sqlite3.OperationalError,)

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
        # The append path (not in memory: another connection would see another database).
        self._appender: sqlite3.Connection | None = None
        self._append_thread: WorkerThread | None = None

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
        thread = WorkerThread("palaver-sqlite-append")
        try:
            self._appender = await thread.submit(_open, str(self.path))
        except BaseException:
            thread.stop()
            raise
        self._append_thread = thread

    async def close(self) -> None:
        for engine in {self._writer, self._reader}:
            if engine is not None:
                await engine.dispose()
        self._writer = self._reader = None
        appender, thread = self._appender, self._append_thread
        self._appender = self._append_thread = None
        if appender is not None and thread is not None:
            # Queued behind any append still running on that thread.
            try:
                await thread.submit(appender.close)
            finally:
                thread.stop()

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

    async def _migration(self, step: Callable[[Connection], None]) -> None:
        # SQLite changes a table's constraints only by copying the table, and dropping
        # the old copy with foreign keys enforced would cascade into every table that
        # points at it. Its documented procedure: keys off around the transaction (they
        # cannot change inside one), checked before the commit (the migration does).
        if self._writer is None:
            raise RuntimeError("SqliteStore.connect() has not been called")
        with self._guard("migrate"):
            async with self._write_lock, self._writer.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                await driver.execute("PRAGMA foreign_keys=OFF")
                try:
                    async with conn.begin():
                        await conn.run_sync(step)
                finally:
                    try:
                        await driver.execute("PRAGMA foreign_keys=ON")
                    except Exception:
                        # Closed under us (a cancelled migration): a connection that
                        # may still have keys off must never serve again.
                        with suppress(Exception):
                            await conn.invalidate()

    async def _append_batch(self, batch: Sequence[NewMessage], at: int) -> list[Appended]:
        if self._appender is None:
            return await super()._append_batch(batch, at)
        return await self._on_append_thread("append_messages", self._append_sync, batch, at)

    async def index_pending(
        self, *, batch: int = INDEX_BATCH, now: int | None = None
    ) -> IndexProgress:
        # The indexer's pass is as hot as a send at full rate (every message goes
        # through it), so it takes the append path's road: one call on its thread,
        # fixed SQL, no SQLAlchemy rows. Reading inside the write transaction costs
        # nothing here, since this process's writes take turns on that thread anyway.
        if self._appender is None:
            return await super().index_pending(batch=batch, now=now)
        return await self._on_append_thread(
            "index_messages", self._index_sync, batch, now if now is not None else now_ms()
        )

    async def advance_cursors(self, updates: Sequence[CursorUpdate]) -> list[Member]:
        # Every receipt flush (several a second in a busy process) moves a cursor per
        # member who sent or read: the append path's road again.
        if self._appender is None:
            return await super().advance_cursors(updates)
        wanted = cursor_targets(updates)
        if not wanted:
            return []
        return await self._on_append_thread("advance_cursors", _advance_cursors, wanted)

    async def _on_append_thread(self, name: str, work: Callable[..., T], *args: Any) -> T:
        """Run ``work(connection, *args)`` as one transaction on the append thread."""
        appender, thread = self._appender, self._append_thread
        if appender is None or thread is None:
            raise RuntimeError("SqliteStore.connect() has not been called")
        with self._guard(name):
            async with self._write_lock:
                try:
                    return await thread.submit(work, appender, *args)
                except asyncio.CancelledError:
                    # The thread commits or rolls back regardless: hold the write lock
                    # until it has, so no other write of this process overlaps it.
                    await thread.drained()
                    raise

    def _index_sync(self, db: sqlite3.Connection, batch: int, now: int) -> IndexProgress:
        """One indexer pass as one transaction, on the append thread."""
        # Without an fsync of its own (about 3 ms here, in which no send can commit):
        # the next message's commit syncs the log with this pass in it, and a pass lost
        # to a power cut loses its watermark move too, so the next pass redoes it.
        db.execute("PRAGMA synchronous=NORMAL")
        try:
            return _index_pass(db, batch, now)
        finally:
            # Whatever happened: every message commit must sync.
            db.execute("PRAGMA synchronous=FULL")

    def _append_sync(
        self, db: sqlite3.Connection, batch: Sequence[NewMessage], at: int
    ) -> list[Appended]:
        """The whole transaction, on the append thread."""
        # Index passes relax the connection's sync level and set it back; should that
        # ever fail half-way, no message is acknowledged without an fsync for it.
        if db.in_transaction:
            _rollback(db)
        db.execute("PRAGMA synchronous=FULL")
        db.execute("BEGIN IMMEDIATE")
        try:
            ids = sorted({new.conversation_id for new in batch})
            last_seq: dict[int, int] = {}
            for chunk in chunks(ids):
                last_seq.update(db.execute(_select_last_seq(len(chunk)), chunk).fetchall())
            if len(last_seq) != len(ids):
                raise not_found()
            if named := named_uploads(batch):
                upload_ids = sorted({u for u, _ in named})
                present = [
                    row
                    for chunk in chunks(upload_ids)
                    for row in db.execute(_uploads(len(chunk)), chunk)
                ]
                require_uploads(named, present)
            plan = AppendPlan(batch, last_seq, self._find_client_ids_sync(db, batch))
            if (writers := plan.writers()) and not _all_members(db, writers):
                raise not_found()
            if len(plan.fresh) == 1 and (new := batch[plan.fresh[0][0]]).plain:
                # A lone message (most batches outside a burst): its id comes back with
                # the insert, two statements fewer than the general path below.
                seq = plan.fresh[0][1]
                db.execute(_BUMP, (seq, at, new.conversation_id))
                (row_id,) = db.execute(_INSERT_ONE, _plain_row(new, seq, at)).fetchone()
                plan.stored({(new.conversation_id, seq): row_id}, at)
            elif plan.fresh:
                db.executemany(_BUMP, [(seq, at, cid) for cid, seq in plan.bumped()])
                # We hold the write lock and rowids grow from the largest one: every
                # row above it is one of ours.
                (top,) = db.execute(_TOP_ID).fetchone()
                fresh = [(batch[index], seq) for index, seq in plan.fresh]
                if all(new.plain for new, _ in fresh):
                    db.executemany(_INSERT, [_plain_row(new, seq, at) for new, seq in fresh])
                else:
                    db.executemany(
                        _INSERT_RICH,
                        [
                            (
                                *_plain_row(new, seq, at),
                                new.ref_id,
                                new.reply_to_id,
                                new.thread_root_id,
                                encode_attachments(new.attachments),
                                encode_mentions(new.mentions),
                            )
                            for new, seq in fresh
                        ],
                    )
                    if attached := plan.attached():
                        db.executemany(_STAMP_UPLOADS, [(at, u, c) for u, c in attached])
                rows = db.execute(_INSERTED, (top,)).fetchall()
                plan.stored({(cid, seq): row_id for row_id, cid, seq in rows}, at)
            db.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            _rollback(db)
            raise IntegrityError("append_messages", None, exc) from exc
        except BaseException:
            _rollback(db)
            raise
        return plan.results()

    def _find_client_ids_sync(
        self, db: sqlite3.Connection, batch: Sequence[NewMessage]
    ) -> dict[ClientKey, Message]:
        """Stored messages with the client ids of the batch (see :data:`ClientKey`)."""
        keys = sorted({key for new in batch if (key := dedup_key(new)) is not None})
        found: dict[ClientKey, Message] = {}
        for chunk in chunks(keys):
            values = [value for key in chunk for value in key]
            for row in db.execute(_select_client_keys(len(chunk)), values):
                found[(row[3], row[1], row[6])] = message_from_columns(row)
        return {key: found[key] for key in keys if key in found}

    def _insert_ignore(self, table: Table, *index_elements: str) -> Insert:
        return sqlite_insert(table).on_conflict_do_nothing(index_elements=list(index_elements))

    def _constraint_name(self, exc: IntegrityError) -> str | None:
        match = _UNIQUE_FAILED.search(str(exc.orig))
        if match is None:
            return None
        columns = tuple(part.strip() for part in match.group(1).split(","))
        return _CONSTRAINTS.get(columns)


# -- the append path's SQL ------------------------------------------------------------

_BUMP = "UPDATE conversations SET last_seq = ?, last_message_at = ? WHERE id = ?"
_TOP_ID = "SELECT coalesce(max(id), 0) FROM messages"
_INSERT = (
    "INSERT INTO messages (conversation_id, seq, sender_id, kind, content, client_msg_id, "
    "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_ONE = _INSERT + " RETURNING id"
# Replies, threads, attachments and mentions: only batches that carry any pay for them.
_INSERT_RICH = (
    "INSERT INTO messages (conversation_id, seq, sender_id, kind, content, client_msg_id, "
    "created_at, ref_id, reply_to_id, thread_root_id, attachments, mentions) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERTED = "SELECT id, conversation_id, seq FROM messages WHERE id > ?"
# In the messages' own transaction: see AppendPlan.attached.
_STAMP_UPLOADS = (
    "UPDATE uploads SET attached_at = ? WHERE id = ? AND conversation_id = ? "
    "AND attached_at IS NULL"
)

# -- the receipt flush's SQL -----------------------------------------------------------

_MOVE_CURSORS = (
    "UPDATE members SET read_seq = ?, delivered_seq = ? WHERE conversation_id = ? AND user_id = ?"
)

# -- the indexer's SQL ------------------------------------------------------------------

_WATERMARK = "SELECT last_id FROM search_state WHERE name = ?"
_NEW_WATERMARK = "INSERT OR IGNORE INTO search_state (name, last_id) VALUES (?, 0)"
_MOVE_WATERMARK = "UPDATE search_state SET last_id = ? WHERE name = ?"
_PENDING = (
    "SELECT id, conversation_id, sender_id, kind, content, created_at, ref_id, deleted_at "
    "FROM messages WHERE id > ? ORDER BY id LIMIT ?"
)
_INDEX = "INSERT OR REPLACE INTO message_search (rowid, body) VALUES (?, ?)"
_UNINDEX = "DELETE FROM message_search WHERE rowid = ?"


def _marks(n: int) -> str:
    """``n`` placeholders: the only text ever formatted into the SQL below."""
    return ", ".join("?" * n)


@functools.cache
def _select_last_seq(n: int) -> str:
    return f"SELECT id, last_seq FROM conversations WHERE id IN ({_marks(n)})"  # noqa: S608


@functools.cache
def _uploads(n: int) -> str:
    return f"SELECT id, conversation_id FROM uploads WHERE id IN ({_marks(n)})"  # noqa: S608


@functools.cache
def _originals(n: int) -> str:
    return (
        "SELECT id, conversation_id, sender_id, created_at FROM messages "  # noqa: S608
        f"WHERE id IN ({_marks(n)}) AND kind = ? AND deleted_at IS NULL"
    )


@functools.lru_cache(maxsize=256)
def _select_cursors(conversations: int, users: int) -> str:
    # Both IN lists, as in the generic path; exact pairs are kept after.
    columns = ", ".join(f"m.{c.strip()}" for c in MEMBER_COLUMNS.split(","))
    return (
        f"SELECT {columns}, c.last_seq FROM members AS m "  # noqa: S608
        "JOIN conversations AS c ON c.id = m.conversation_id "
        f"WHERE m.conversation_id IN ({_marks(conversations)}) "
        f"AND m.user_id IN ({_marks(users)})"
    )


def _plain_row(new: NewMessage, seq: int, at: int) -> tuple[Any, ...]:
    """The parameters of :data:`_INSERT` for one message."""
    return (
        new.conversation_id,
        seq,
        new.sender_id,
        new.kind.value,
        new.content,
        new.client_msg_id,
        at,
    )


def _all_members(db: sqlite3.Connection, writers: set[tuple[int, int]]) -> bool:
    """Whether every ``(conversation_id, user_id)`` of ``writers`` is a member."""
    if len(writers) == 1:
        # Most batches outside a burst: a third of the cost of the VALUES join.
        (count,) = db.execute(_IS_MEMBER, next(iter(writers))).fetchone()
        return bool(count)
    pairs = sorted(writers)
    found = 0
    for some in chunks(pairs):
        flat = [value for pair in some for value in pair]
        (count,) = db.execute(_count_members(len(some)), flat).fetchone()
        found += count
    return found == len(pairs)


_IS_MEMBER = "SELECT count(*) FROM members WHERE conversation_id = ? AND user_id = ?"


@functools.lru_cache(maxsize=256)
def _count_members(count: int) -> str:
    """How many of ``count`` distinct ``(conversation_id, user_id)`` pairs are members:
    one probe of the members' primary key each."""
    pairs = ", ".join(["(?, ?)"] * count)
    return (
        f"WITH k(conversation_id, user_id) AS (VALUES {pairs}) "  # noqa: S608
        "SELECT count(*) FROM k JOIN members AS m "
        "ON m.conversation_id = k.conversation_id AND m.user_id = k.user_id"
    )


@functools.lru_cache(maxsize=256)
def _select_client_keys(count: int) -> str:
    # One index probe per key. IN lists (senders, client ids) probed every sender with
    # every client id: for a batch of 38, 382 us against 23 us.
    keys = ", ".join(["(?, ?, ?)"] * count)
    columns = ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLUMNS.split(","))
    return (
        f"WITH k(sender_id, conversation_id, client_msg_id) AS (VALUES {keys}) "  # noqa: S608
        f"SELECT {columns} FROM k JOIN messages AS m ON m.sender_id = k.sender_id "
        "AND m.conversation_id = k.conversation_id AND m.client_msg_id = k.client_msg_id"
    )


def _index_pass(db: sqlite3.Connection, batch: int, now: int) -> IndexProgress:
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute(_WATERMARK, (WATERMARK,)).fetchone()
        if row is None:
            db.execute(_NEW_WATERMARK, (WATERMARK,))
        start = int(row[0]) if row is not None else 0
        rows = [PendingEntry._make(r) for r in db.execute(_PENDING, (start, batch))]
        edited: dict[int, Original] = {}
        for chunk in chunks(edit_targets(rows)):
            for r in db.execute(_originals(len(chunk)), (*chunk, MessageKind.TEXT.value)):
                edited[r[0]] = Original._make(r)
        plan = plan_index(start, rows, edited, now)
        if plan.docs:
            db.executemany(_INDEX, [(d.message_id, d.body) for d in plan.docs])
        if plan.gone:
            db.executemany(_UNINDEX, [(i,) for i in plan.gone])
        if plan.moved != start:
            db.execute(_MOVE_WATERMARK, (plan.moved, WATERMARK))
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise
    return IndexProgress(len(plan.docs), start, plan.moved)


def _advance_cursors(db: sqlite3.Connection, wanted: CursorTargets) -> list[Member]:
    """Move members' cursors (see :func:`moved_cursor`) in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        changed: list[Member] = []
        for chunk in chunks(sorted(wanted)):
            conversation_ids = sorted({c for c, _ in chunk})
            user_ids = sorted({u for _, u in chunk})
            sql = _select_cursors(len(conversation_ids), len(user_ids))
            for row in db.execute(sql, (*conversation_ids, *user_ids)):
                old = member_from_columns(row)
                target = wanted.get((old.conversation_id, old.user_id))
                if target is not None and (moved := moved_cursor(old, row[-1], target)):
                    changed.append(moved)
        if changed:
            db.executemany(
                _MOVE_CURSORS,
                [(m.read_seq, m.delivered_seq, m.conversation_id, m.user_id) for m in changed],
            )
        db.execute("COMMIT")
    except BaseException:
        _rollback(db)
        raise
    return changed


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        with suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _open(path: str) -> sqlite3.Connection:
    """The append path's connection, with the pragmas every connection gets."""
    db = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        _pragmas(db.cursor())
    except BaseException:
        db.close()
        raise
    return db


def _pragmas(cursor: Any) -> None:
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL syncs the WAL on every commit: an acknowledged message survives a
        # power cut, not only a crash of the process.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _configure(engine: AsyncEngine, *, begin: str) -> None:
    """Set the pragmas on every new connection and take over transaction control."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (below): sqlite3's own handling defers it to
        # the first write and so breaks snapshot reads and transactional DDL.
        dbapi_connection.isolation_level = None
        _pragmas(dbapi_connection.cursor())

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)
