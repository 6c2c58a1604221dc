"""The PostgreSQL store (asyncpg): several processes and nodes share one database.

Sequence numbers stay gapless across processes because ``append_messages`` locks the
conversation rows (``SELECT … FOR NO KEY UPDATE``, in id order) before it reads and bumps
``last_seq``: writers of one conversation take turns until each one commits.

``append_messages`` is one statement, in one round trip, committed on its own (see
:data:`_APPEND`), on a connection it keeps checked out of the pool between batches.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import Table, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.dml import Insert

from palaver.core.errors import PalaverError, not_found
from palaver.core.models import Appended, Message, NewMessage
from palaver.store.rich import RichSqlStore
from palaver.store.search import PostgresSearch
from palaver.store.sql import (
    MESSAGE_COLUMNS,
    AppendPlan,
    ClientKey,
    attached_upload_ids,
    dedup_key,
    encode_attachments,
    encode_mentions,
    message_from_columns,
    named_uploads,
    require_uploads,
)

# Any fixed 64-bit key works; this one spells "palaver" so that another application
# sharing the database is unlikely to pick it.
MIGRATION_LOCK_KEY = int.from_bytes(b"palaver", "big")

_CONSTRAINT = re.compile(r'constraint "([^"]+)"')


class _Lane:
    """One append transaction at a time, on a connection kept between batches."""

    __slots__ = ("conn", "lock")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.conn: AsyncConnection | None = None


class PostgresStore(PostgresSearch, RichSqlStore):
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
    data_errors = (asyncpg.DataError,)

    def __init__(self, url: str, *, pool_size: int = 10, connect_timeout: float = 5.0) -> None:
        super().__init__()
        parsed = make_url(url)
        if parsed.drivername != "postgresql+asyncpg":
            raise ValueError(f"not a postgresql+asyncpg URL: {parsed.drivername}://…")
        self._url = parsed
        self._pool_size = max(1, pool_size)
        self._connect_timeout = connect_timeout
        self._engine: AsyncEngine | None = None
        # Two appends in flight: one is written while the other waits for its commit's
        # fsync. Each lane keeps its connection between batches (see _append_connection).
        # Rows are locked in id order, so concurrent batches queue, never deadlock.
        self.append_concurrency = 2 if self._pool_size > 2 else 1
        self._lanes = [_Lane() for _ in range(self.append_concurrency)]

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
        for lane in self._lanes:
            await self._release_appender(lane, invalidate=False)
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @asynccontextmanager
    async def _connection(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    async def _append_batch(self, batch: Sequence[NewMessage], at: int) -> list[Appended]:
        # Repeats of a client id within the batch are answered from their first copy
        # (AppendPlan below): the statement sees each key once.
        seen: set[ClientKey] = set()
        rows: list[NewMessage] = []
        for new in batch:
            if (key := dedup_key(new)) is not None:
                if key in seen:
                    continue
                seen.add(key)
            rows.append(new)
        conversation_ids = sorted({new.conversation_id for new in batch})
        args: tuple[Any, ...] = (
            [new.conversation_id for new in rows],
            [new.sender_id for new in rows],
            [new.kind.value for new in rows],
            [new.content for new in rows],
            [new.client_msg_id for new in rows],
            conversation_ids,
            at,
        )
        rich = not all(new.plain for new in rows)
        files: list[tuple[int, int]] = []
        if rich:
            args += (
                [new.ref_id for new in rows],
                [new.reply_to_id for new in rows],
                [new.thread_root_id for new in rows],
                [encode_attachments(new.attachments) for new in rows],
                [encode_mentions(new.mentions) for new in rows],
            )
            statement = _APPEND_RICH if seen else _APPEND_RICH_NO_CLIENT_IDS
            # Each upload with the position of its message among the rows (the input's
            # ordinality), so only the messages actually inserted stamp theirs.
            files = [(u, i) for i, new in enumerate(rows, 1) for u in attached_upload_ids(new)]
            if files:
                args += ([u for u, _ in files], [i for _, i in files])
                statement = _APPEND_ATTACHED if seen else _APPEND_ATTACHED_NO_CLIENT_IDS
        else:
            statement = _APPEND if seen else _APPEND_NO_CLIENT_IDS
        # The writer runs at most append_concurrency batches at once: a lane is free.
        lane = next((lane for lane in self._lanes if not lane.lock.locked()), self._lanes[0])
        with self._guard("append_messages"):
            async with lane.lock:
                driver = await self._append_connection(lane)
                try:
                    if files:
                        returned = await _append_carrying_uploads(driver, rows, statement, args)
                    else:
                        returned = await driver.fetch(statement, *args)
                except asyncpg.IntegrityConstraintViolationError as exc:
                    raise IntegrityError("append_messages", None, exc) from exc
                except (asyncpg.PostgresError, PalaverError):
                    raise  # answered by the server: the connection is fine
                except BaseException:
                    # Lost or interrupted mid-statement: never reuse that connection.
                    await self._release_appender(lane, invalidate=True)
                    raise
                finally:
                    if not self._keep_appender:
                        await self._release_appender(lane, invalidate=False)
        existing: dict[ClientKey, Message] = {}
        ids: dict[tuple[int, int], int] = {}
        first_seq: dict[int, int] = {}
        for row in returned:
            what, row_id, cid, seq = row[0], row[1], row[2], row[3]
            if what == _MISSING:
                raise not_found()
            if what == _INSERTED:
                ids[(cid, seq)] = row_id
                first_seq[cid] = min(first_seq.get(cid, seq), seq)
            else:
                existing[(row[4], cid, row[7])] = _message(row)
        # Each conversation's new messages got consecutive numbers in input order from
        # just above its old last_seq: the plan replays that to place each row.
        start = {cid: first_seq.get(cid, 1) - 1 for cid in conversation_ids}
        plan = AppendPlan(batch, start, existing)
        if len(plan.fresh) != len(ids):
            raise RuntimeError("append_messages: inserted rows do not match the batch")
        plan.stored(ids, at)
        return plan.results()

    @property
    def _keep_appender(self) -> bool:
        # With a pool of one, keeping it would starve every other query.
        return self._pool_size > 1

    async def _append_connection(self, lane: _Lane) -> Any:
        """The asyncpg connection of one append lane.

        Kept checked out between batches, so a batch costs no pool checkout (whose
        pre-ping is three more round trips). One the server has closed (a restart, an
        idle timeout) is replaced before use, as the pre-ping would have done.
        """
        conn = lane.conn
        if conn is not None:
            driver = (await conn.get_raw_connection()).driver_connection
            if driver is not None and not driver.is_closed():
                return driver
            await self._release_appender(lane, invalidate=True)
        conn = await self.engine.connect()
        try:
            raw = await conn.get_raw_connection()
        except BaseException:
            await conn.close()
            raise
        lane.conn = conn
        return raw.driver_connection

    async def _release_appender(self, lane: _Lane, *, invalidate: bool) -> None:
        conn, lane.conn = lane.conn, None
        if conn is None:
            return
        with suppress(Exception):
            if invalidate:
                await conn.invalidate()
            await conn.close()

    def _insert_ignore(self, table: Table, *index_elements: str) -> Insert:
        return pg_insert(table).on_conflict_do_nothing(index_elements=list(index_elements))

    def _constraint_name(self, exc: IntegrityError) -> str | None:
        # asyncpg's own error (the append path), or SQLAlchemy's adapter around it.
        name = getattr(exc.orig, "constraint_name", None)
        if name is None and exc.orig is not None:
            name = getattr(exc.orig.__cause__, "constraint_name", None)
        if isinstance(name, str):
            return name
        match = _CONSTRAINT.search(str(exc.orig))
        return match.group(1) if match else None

    async def _before_migrate(self, conn: AsyncConnection) -> None:
        # Held until the migration commits: a second process starting at the same time
        # waits, then finds the schema at head and does nothing.
        await conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK_KEY)))


# -- the append statement --------------------------------------------------------------
#
# One statement, so one round trip that also commits (no BEGIN/COMMIT around it):
#
# * ``locked`` takes the conversations' row locks in id order (batches never deadlock)
#   and ``found`` checks every one exists; without that, nothing is written and the
#   statement answers ``_MISSING`` (NOT_FOUND);
# * ``stored`` finds messages that already carry a client id of the batch (duplicates);
# * ``outsiders`` finds a new message whose sender is not a member: as with a missing
#   conversation, nothing is written and the answer is ``_MISSING``;
# * ``bumped`` raises each conversation's last_seq by its count of new messages. It runs
#   after the locks, and under READ COMMITTED it updates the newest committed row
#   version, so the numbers it hands out follow whatever a concurrent writer committed:
#   gapless;
# * ``inserted`` numbers the new messages in input order from the old last_seq;
# * ``attached`` (batches with attachments only) stamps ``attached_at`` on the uploads
#   the new messages carry, so they commit together (see AppendPlan.attached).
#
# ``stored`` reads the snapshot taken when the statement started, before it waited for
# a lock: a concurrent copy committed meanwhile makes the insert fail on the unique
# (sender_id, conversation_id, client_msg_id) key, nothing commits, and
# append_messages' retry finds it.

# The first column of each answer row: what the row is.
_INSERTED, _STORED, _MISSING = 0, 1, 2

_HEAD = """
WITH input AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::varchar[]/*rich*/)
        WITH ORDINALITY AS i(conversation_id, sender_id, kind, content, client_msg_id/*rc*/, ord)
),
locked AS (
    SELECT id FROM conversations WHERE id = ANY($6::bigint[]) ORDER BY id FOR NO KEY UPDATE
),
found AS (
    SELECT count(*) = cardinality($6::bigint[]) AS ok FROM locked
),"""

# Replies, threads, attachments and mentions: only batches that carry any pay for them.
_RICH_INPUT = ", $8::bigint[], $9::bigint[], $10::bigint[], $11::text[], $12::text[]"
_RICH_NAMES = ", ref_id, reply_to_id, thread_root_id, attachments, mentions"
_RICH_INSERT = ", ref_id, reply_to_id, thread_root_id, attachments, mentions"
_RICH_VALUES = ", n.ref_id, n.reply_to_id, n.thread_root_id, n.attachments::json, n.mentions"

_STORED_CTE = f"""
stored AS (
    -- LATERAL ... LIMIT 1 keeps this one probe of the unique index per message (the
    -- planner would hash the whole table while it is small, and costs it so for long).
    SELECT m.* FROM input i CROSS JOIN LATERAL (
        SELECT {MESSAGE_COLUMNS}
        FROM messages
        WHERE sender_id = i.sender_id AND conversation_id = i.conversation_id
          AND client_msg_id = i.client_msg_id
        LIMIT 1
    ) m
),"""  # noqa: S608

_NEW = """
outsiders AS (
    SELECT 1 FROM input i
    WHERE i.sender_id IS NOT NULL /* and not stored */
      AND NOT EXISTS (SELECT 1 FROM members mb
                      WHERE mb.conversation_id = i.conversation_id
                        AND mb.user_id = i.sender_id)
    LIMIT 1
),
new AS (
    SELECT i.*, row_number() OVER (PARTITION BY i.conversation_id ORDER BY i.ord) AS k
    FROM input i
    WHERE (SELECT ok FROM found) AND NOT EXISTS (SELECT 1 FROM outsiders) /* and not stored */
),"""

_NOT_STORED = """
      AND NOT EXISTS (SELECT 1 FROM stored s
                      WHERE s.sender_id = i.sender_id
                        AND s.conversation_id = i.conversation_id
                        AND s.client_msg_id = i.client_msg_id)"""

# Answer rows: what, then MESSAGE_COLUMNS (only the first three are set for new rows).
_NULLS = (
    "NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::bigint, NULL::bigint, "
    "NULL::bigint, NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, NULL::text"
)

_TAIL = f"""
bumped AS (
    UPDATE conversations c SET last_seq = c.last_seq + n.count, last_message_at = $7::bigint
    FROM (SELECT conversation_id, count(*) AS count FROM new GROUP BY conversation_id) n
    WHERE c.id = n.conversation_id
    RETURNING c.id, c.last_seq - n.count AS base
),
inserted AS (
    INSERT INTO messages
        (conversation_id, seq, sender_id, kind, content, client_msg_id, created_at/*ri*/)
    SELECT n.conversation_id, b.base + n.k, n.sender_id, n.kind, n.content,
           n.client_msg_id, $7::bigint/*rv*/
    FROM new n JOIN bumped b ON b.id = n.conversation_id
    ORDER BY n.ord
    RETURNING id, conversation_id, seq
)/*attached*/
SELECT 0, id, conversation_id, seq, {_NULLS}
FROM inserted
UNION ALL
SELECT 2, NULL, NULL, NULL, {_NULLS} FROM found
WHERE NOT ok OR EXISTS (SELECT 1 FROM outsiders)"""  # noqa: S608

_ATTACHED_CTE = """,
attached AS (
    UPDATE uploads u SET attached_at = $7::bigint
    FROM unnest($13::bigint[], $14::bigint[]) AS a(id, ord) JOIN new n ON n.ord = a.ord
    WHERE u.id = a.id AND u.conversation_id = n.conversation_id AND u.attached_at IS NULL
)"""

_ANSWER_STORED = """
UNION ALL
SELECT 1, id, conversation_id, seq, sender_id, kind, content, client_msg_id, created_at,
       ref_id, reply_to_id, thread_root_id, edited_at, deleted_at, attachments::text,
       mentions
FROM stored"""


def _statement(*, client_ids: bool, rich: bool, attached: bool = False) -> str:
    """The append statement for a batch with client ids or not, rich columns or not,
    attachments (which are rich) or not."""
    if client_ids:
        text = (
            _HEAD
            + _STORED_CTE
            + _NEW.replace("/* and not stored */", _NOT_STORED)
            + _TAIL
            + _ANSWER_STORED
        )
    else:
        # Without client ids there is nothing to deduplicate against.
        text = _HEAD + _NEW + _TAIL
    marks = {
        "/*rich*/": _RICH_INPUT,
        "/*rc*/": _RICH_NAMES,
        "/*ri*/": _RICH_INSERT,
        "/*rv*/": _RICH_VALUES,
    }
    text = text.replace("/*attached*/", _ATTACHED_CTE if attached else "")
    for mark, extra in marks.items():
        text = text.replace(mark, extra if rich else "")
    return text


_APPEND = _statement(client_ids=True, rich=False)
_APPEND_NO_CLIENT_IDS = _statement(client_ids=False, rich=False)
_APPEND_RICH = _statement(client_ids=True, rich=True)
_APPEND_RICH_NO_CLIENT_IDS = _statement(client_ids=False, rich=True)
_APPEND_ATTACHED = _statement(client_ids=True, rich=True, attached=True)
_APPEND_ATTACHED_NO_CLIENT_IDS = _statement(client_ids=False, rich=True, attached=True)


async def _append_carrying_uploads(
    driver: asyncpg.Connection, rows: Sequence[NewMessage], statement: str, args: tuple[Any, ...]
) -> list[asyncpg.Record]:
    """The append statement in a transaction that first locks the uploads the messages
    name and checks they are still there (see :func:`require_uploads`). Uploads before
    conversations, as deleting a message locks them; FOR NO KEY UPDATE because the
    statement stamps them, and two appends that share a lock to upgrade would deadlock."""
    named = named_uploads(rows)
    async with driver.transaction():
        present = await driver.fetch(_LOCK_UPLOADS, sorted({u for u, _ in named}))
        require_uploads(named, present)
        return list(await driver.fetch(statement, *args))


_LOCK_UPLOADS = (
    "SELECT id, conversation_id FROM uploads WHERE id = ANY($1::bigint[]) "
    "ORDER BY id FOR NO KEY UPDATE"
)


def _message(row: Any) -> Message:
    return message_from_columns(row, 1)
