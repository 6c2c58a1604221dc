"""The SQL implementation of :class:`~palaver.store.base.Store`, shared by both engines.

Every method runs one named transaction through :meth:`SqlStore._txn` (Synapse's
``runInteraction``): the name labels logs and the ``on_txn`` timing hook, and the helper
turns driver errors into :class:`StoreUnavailable` or a ``CONFLICT``. Engine-specific
details (connections, ``INSERT … ON CONFLICT``, constraint names in error messages, the
migration lock) live in :mod:`palaver.store.sqlite` and :mod:`palaver.store.postgres`.
"""

from __future__ import annotations

import abc
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any, TypeVar

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    Column,
    Connection,
    Executable,
    Index,
    PrimaryKeyConstraint,
    Table,
    UniqueConstraint,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import DataError as SqlDataError
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import Insert

from palaver.core.errors import ErrorCode, PalaverError, not_found
from palaver.core.models import (
    MENTION_ROOM,
    Appended,
    AuditEvent,
    Conversation,
    ConversationKind,
    ConversationSummary,
    Member,
    Message,
    MessageKind,
    NewMessage,
    Role,
    Session,
    User,
    now_ms,
)
from palaver.core.notices import NamedUser, Notice, without_user
from palaver.store import schema
from palaver.store.base import (
    USER_FIELDS,
    Anonymised,
    CursorUpdate,
    RefreshOutcome,
    RefreshResult,
    Store,
    StoreUnavailable,
)
from palaver.store.moderation import SqlModeration
from palaver.store.schema import (
    audit_log,
    conversations,
    members,
    messages,
    metadata,
    notice_names,
    password_resets,
    refresh_tokens,
    sessions,
    uploads,
    users,
)

T = TypeVar("T")
Txn = Callable[[AsyncConnection], Awaitable[T]]
Row = Mapping[Any, Any]

log = logging.getLogger("palaver.store")

# Keeps IN lists well under SQLite's 32,766 bound parameters and PostgreSQL's 32,767.
_CHUNK = 500

# Errors that mean "the database is not there right now": the caller answers with a
# retryable error. Engines add their driver's own connection errors.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
)


def unique_keys() -> Iterator[tuple[Table, str, list[Column[Any]]]]:
    """Every named key of the schema that refuses a clash (primary keys, unique
    constraints and unique indexes): its table, name and columns."""
    for table in metadata.tables.values():
        for key in (*table.constraints, *table.indexes):
            if isinstance(key, Index):
                if not key.unique:
                    continue
            elif not isinstance(key, UniqueConstraint | PrimaryKeyConstraint):
                continue
            columns = list(key.columns)
            if isinstance(key.name, str) and columns:
                yield table, key.name, columns


def _unique_fields() -> dict[str, str]:
    """Unique key name -> the input field a caller can change to resolve a clash."""
    # The normalised copy (username_norm) is what clashes; the caller sent the
    # original (username), so name that.
    return {name: columns[-1].name.removesuffix("_norm") for _, name, columns in unique_keys()}


#: Unique constraint (and primary key) name -> the ``field`` of its ``CONFLICT``.
UNIQUE_FIELDS = _unique_fields()


def chunks(items: Sequence[T], size: int = _CHUNK) -> Iterable[Sequence[T]]:
    """``items`` in slices small enough for an IN list of bound parameters."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- rows to records (``p`` is the column label prefix in joined selects) ------------


def _user(m: Row, p: str = "") -> User:
    return User(
        id=m[p + "id"],
        username=m[p + "username"],
        email=m[p + "email"],
        display_name=m[p + "display_name"],
        password_hash=m[p + "password_hash"],
        is_admin=bool(m[p + "is_admin"]),
        is_active=bool(m[p + "is_active"]),
        created_at=m[p + "created_at"],
        avatar_url=m[p + "avatar_url"],
        deleted_at=m[p + "deleted_at"],
        last_seen_at=m[p + "last_seen_at"],
    )


def _session(m: Row, p: str = "") -> Session:
    return Session(
        id=m[p + "id"],
        user_id=m[p + "user_id"],
        created_at=m[p + "created_at"],
        last_seen_at=m[p + "last_seen_at"],
        expires_at=m[p + "expires_at"],
        device=m[p + "device"],
        ip=m[p + "ip"],
        revoked_at=m[p + "revoked_at"],
    )


def _conversation(m: Row, p: str = "") -> Conversation:
    return Conversation(
        id=m[p + "id"],
        kind=ConversationKind(m[p + "kind"]),
        name=m[p + "name"],
        created_by=m[p + "created_by"],
        created_at=m[p + "created_at"],
        last_seq=m[p + "last_seq"],
        min_seq=m[p + "min_seq"],
        topic=m[p + "topic"],
        last_message_at=m[p + "last_message_at"],
    )


#: The columns :func:`member_from_columns` reads, in order.
MEMBER_COLUMNS = (
    "conversation_id, user_id, role, joined_at, read_seq, delivered_seq, muted_until, "
    "notify_level, notify_muted_until"
)


def member_from_columns(row: Sequence[Any]) -> Member:
    """A member from a raw driver row whose columns are :data:`MEMBER_COLUMNS`."""
    return Member(
        conversation_id=row[0],
        user_id=row[1],
        role=Role(row[2]),
        joined_at=row[3],
        read_seq=row[4],
        delivered_seq=row[5],
        muted_until=row[6],
        notify_level=row[7],
        notify_muted_until=row[8],
    )


#: ``(conversation_id, user_id) -> (read_seq, delivered_seq)`` a cursor flush asks for.
CursorTargets = dict[tuple[int, int], tuple[int, int]]


def cursor_targets(updates: Sequence[CursorUpdate]) -> CursorTargets:
    """The furthest each member's cursors are asked to move, over all ``updates``."""
    wanted: CursorTargets = {}
    for up in updates:
        key = (up.conversation_id, up.user_id)
        read, delivered = wanted.get(key, (0, 0))
        wanted[key] = (max(read, up.read_seq or 0), max(delivered, up.delivered_seq or 0))
    return wanted


def moved_cursor(old: Member, last_seq: int, target: tuple[int, int]) -> Member | None:
    """``old`` with its cursors moved towards ``target``, or None if they do not move.

    Cursors only go forward and never past the conversation's last message; reading a
    message implies it was delivered."""
    read = max(old.read_seq, min(target[0], last_seq))
    delivered = max(old.delivered_seq, min(target[1], last_seq), read)
    if (read, delivered) == (old.read_seq, old.delivered_seq):
        return None
    return replace(old, read_seq=read, delivered_seq=delivered)


def _member(m: Row, p: str = "") -> Member:
    return Member(
        conversation_id=m[p + "conversation_id"],
        user_id=m[p + "user_id"],
        role=Role(m[p + "role"]),
        joined_at=m[p + "joined_at"],
        read_seq=m[p + "read_seq"],
        delivered_seq=m[p + "delivered_seq"],
        muted_until=m[p + "muted_until"],
        notify_level=m[p + "notify_level"],
        notify_muted_until=m[p + "notify_muted_until"],
    )


#: The columns :func:`message_from_columns` reads, in order.
MESSAGE_COLUMNS = (
    "id, conversation_id, seq, sender_id, kind, content, client_msg_id, created_at, "
    "ref_id, reply_to_id, thread_root_id, edited_at, deleted_at, attachments, mentions"
)


def message_from_columns(row: Sequence[Any], start: int = 0) -> Message:
    """A message from a raw driver row whose columns, from ``start``, are
    :data:`MESSAGE_COLUMNS` (the order both engines' append fast paths select)."""
    return Message(
        id=row[start],
        conversation_id=row[start + 1],
        seq=row[start + 2],
        sender_id=row[start + 3],
        kind=MessageKind(row[start + 4]),
        content=row[start + 5],
        client_msg_id=row[start + 6],
        created_at=row[start + 7],
        ref_id=row[start + 8],
        reply_to_id=row[start + 9],
        thread_root_id=row[start + 10],
        edited_at=row[start + 11],
        deleted_at=row[start + 12],
        attachments=decode_attachments(row[start + 13]),
        mentions=decode_mentions(row[start + 14]),
    )


def _message(m: Row, p: str = "") -> Message:
    return Message(
        id=m[p + "id"],
        conversation_id=m[p + "conversation_id"],
        seq=m[p + "seq"],
        sender_id=m[p + "sender_id"],
        kind=MessageKind(m[p + "kind"]),
        content=m[p + "content"],
        created_at=m[p + "created_at"],
        client_msg_id=m[p + "client_msg_id"],
        ref_id=m[p + "ref_id"],
        reply_to_id=m[p + "reply_to_id"],
        thread_root_id=m[p + "thread_root_id"],
        edited_at=m[p + "edited_at"],
        deleted_at=m[p + "deleted_at"],
        attachments=decode_attachments(m[p + "attachments"]),
        mentions=decode_mentions(m[p + "mentions"]),
    )


def decode_attachments(value: Any) -> tuple[dict[str, Any], ...]:
    """The ``attachments`` column as stored: NULL, a decoded list, or JSON text (raw
    drivers do not decode JSON columns)."""
    if not value:
        return ()
    if isinstance(value, str | bytes):
        value = orjson.loads(value)
    return tuple(value)


def encode_attachments(attachments: tuple[dict[str, Any], ...]) -> str | None:
    """JSON text for the raw append paths (NULL when there are none)."""
    return orjson.dumps(list(attachments)).decode() if attachments else None


def encode_mentions(mentions: tuple[str, ...]) -> str | None:
    """``",ada,bob,"``: delimited at both ends so one substring test finds a name."""
    return f",{','.join(mentions)}," if mentions else None


def decode_mentions(value: str | None) -> tuple[str, ...]:
    return tuple(value.strip(",").split(",")) if value else ()


def _audit(m: Row) -> AuditEvent:
    return AuditEvent(
        id=m["id"],
        at=m["at"],
        action=m["action"],
        actor_id=m["actor_id"],
        target=m["target"],
        ip=m["ip"],
        details=dict(m["details"] or {}),
    )


class SqlStore(SqlModeration, Store):
    """A :class:`Store` on SQLAlchemy Core with an async engine.

    Subclasses open the engine(s) in :meth:`connect` and provide the engine hooks below.
    ``on_txn``, when set, is called with each transaction's name and duration in
    seconds (the metrics module hooks it).
    """

    #: Driver errors that mean the database is unreachable (beyond the generic ones).
    unavailable_errors: tuple[type[BaseException], ...] = ()
    #: The driver's own "this value does not fit the column" errors (raw fast paths).
    data_errors: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self.on_txn: Callable[[str, float], None] | None = None

    # -- engine hooks ----------------------------------------------------------------

    @property
    @abc.abstractmethod
    def engine(self) -> AsyncEngine:
        """The engine writes go through (for tools and tests: raw SQL, inspection)."""

    @abc.abstractmethod
    def _connection(self, *, write: bool) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection inside a transaction, committed when the block exits cleanly."""

    @abc.abstractmethod
    def _insert_ignore(self, table: Table, *index_elements: str) -> Insert:
        """``INSERT … ON CONFLICT (index_elements) DO NOTHING`` for this engine."""

    @abc.abstractmethod
    def _constraint_name(self, exc: IntegrityError) -> str | None:
        """The name of the unique constraint ``exc`` violated, if it was one."""

    async def _before_migrate(self, conn: AsyncConnection) -> None:
        """Serialize concurrent migrations across processes (engine-specific)."""

    # -- named transactions ------------------------------------------------------------

    async def _txn(self, name: str, fn: Txn[T], *, write: bool = True) -> T:
        """Run ``fn(conn)`` in one transaction named ``name`` and return its result.

        Unreachable databases raise :class:`StoreUnavailable`; unique violations raise
        ``CONFLICT`` naming the field. ``write=False`` lets an engine route the work to
        a reader connection.
        """
        with self._guard(name):
            async with self._connection(write=write) as conn:
                return await fn(conn)

    def _guard(self, name: str) -> _Guard:
        """Time the block as transaction ``name`` and translate driver errors (what
        :meth:`_txn` does around its connection; engine fast paths use it directly).

        A plain context manager: nothing in it waits, and every transaction of the
        process goes through it."""
        return _Guard(self, name)

    def _translated(self, name: str, exc: BaseException) -> BaseException | None:
        """What a driver error that ended transaction ``name`` becomes (None: itself)."""
        if isinstance(exc, IntegrityError):
            return self._integrity_error(exc)
        if isinstance(exc, (*_UNAVAILABLE, *self.unavailable_errors)):
            log.warning("store transaction %s failed: %s", name, exc)
            return StoreUnavailable(f"{name}: database unavailable")
        if isinstance(exc, OverflowError | SqlDataError):
            # An id or number past 64 bits cannot name anything stored: a client error,
            # refused by the driver before the query runs.
            return _malformed()
        if isinstance(exc, DBAPIError):
            if self._is_data_error(exc):
                return _malformed()
            if not exc.connection_invalidated:
                return None
            log.warning("store transaction %s lost its connection: %s", name, exc)
            return StoreUnavailable(f"{name}: database connection lost")
        if isinstance(exc, Exception) and isinstance(exc, self.data_errors):
            return _malformed()  # a raw fast path's driver error
        return None

    def _is_data_error(self, exc: DBAPIError) -> bool:
        """Whether the driver refused a parameter (SQLAlchemy's asyncpg adapter wraps
        asyncpg's ``DataError`` in a plain ``DBAPIError``)."""
        cause: BaseException | None = exc.orig
        for _ in range(4):
            if cause is None:
                return False
            if isinstance(cause, (OverflowError, *self.data_errors)):
                return True
            cause = cause.__cause__
        return False

    def _integrity_error(self, exc: IntegrityError) -> Exception:
        constraint = self._constraint_name(exc)
        if constraint is not None and constraint in UNIQUE_FIELDS:
            field = UNIQUE_FIELDS[constraint]
            return PalaverError(ErrorCode.CONFLICT, f"{field} already taken", field=field)
        if "foreign key" in str(exc.orig).lower():
            return PalaverError(ErrorCode.NOT_FOUND, "a referenced user or conversation is gone")
        return exc

    async def _one(self, name: str, stmt: Executable, convert: Callable[[Row], T]) -> T | None:
        async def txn(conn: AsyncConnection) -> T | None:
            row = (await conn.execute(stmt)).first()
            return convert(row._mapping) if row else None

        return await self._txn(name, txn, write=False)

    async def _all(self, name: str, stmt: Executable, convert: Callable[[Row], T]) -> list[T]:
        async def txn(conn: AsyncConnection) -> list[T]:
            return [convert(row._mapping) for row in await conn.execute(stmt)]

        return await self._txn(name, txn, write=False)

    async def _scalars(self, name: str, stmt: Executable) -> list[Any]:
        async def txn(conn: AsyncConnection) -> list[Any]:
            return list((await conn.execute(stmt)).scalars())

        return await self._txn(name, txn, write=False)

    async def _rowcount(self, name: str, stmt: Executable) -> int:
        async def txn(conn: AsyncConnection) -> int:
            return (await conn.execute(stmt)).rowcount

        return await self._txn(name, txn)

    # -- lifecycle -------------------------------------------------------------------

    async def ping(self) -> None:
        await self._scalars("ping", select(1))

    async def migrate(self) -> None:
        await self._migration(upgrade_head)

    async def downgrade(self, revision: str) -> None:
        """Take the schema back to the Alembic ``revision`` ("base": nothing)."""
        await self._migration(functools.partial(downgrade_to, revision=revision))

    async def _migration(self, step: Callable[[Connection], None]) -> None:
        """Run ``step`` (an Alembic command) in one transaction."""

        async def txn(conn: AsyncConnection) -> None:
            await self._before_migrate(conn)
            await conn.run_sync(step)

        await self._txn("migrate", txn)

    # -- users -----------------------------------------------------------------------

    async def create_user(
        self,
        *,
        username: str | None,
        email: str | None,
        display_name: str,
        password_hash: str,
        is_admin: bool = False,
    ) -> User:
        values: dict[str, Any] = {
            "username": username,
            "username_norm": username.lower() if username is not None else None,
            "email": email.lower() if email is not None else None,
            "display_name": display_name,
            "avatar_url": None,
            "password_hash": password_hash,
            "is_admin": is_admin,
            "is_active": True,
            "created_at": now_ms(),
            "deleted_at": None,
            "last_seen_at": None,
        }

        async def txn(conn: AsyncConnection) -> User:
            result = await conn.execute(insert(users).values(values).returning(users.c.id))
            return _user({**values, "id": result.scalar_one()})

        return await self._txn("create_user", txn)

    async def get_user(self, user_id: int) -> User | None:
        return await self._one("get_user", select(users).where(users.c.id == user_id), _user)

    async def get_users(self, user_ids: Iterable[int]) -> dict[int, User]:
        ids = sorted(set(user_ids))

        async def txn(conn: AsyncConnection) -> dict[int, User]:
            found: dict[int, User] = {}
            for chunk in chunks(ids):
                for row in await conn.execute(select(users).where(users.c.id.in_(chunk))):
                    found[row.id] = _user(row._mapping)
            return found

        return await self._txn("get_users", txn, write=False) if ids else {}

    async def get_user_by_login(self, login: str) -> User | None:
        norm = login.lower()
        stmt = (
            select(users)
            .where(or_(users.c.username_norm == norm, users.c.email == norm))
            # A username that looks like someone else's e-mail address: the username wins.
            .order_by((users.c.username_norm == norm).desc())
            .limit(1)
        )
        return await self._one("get_user_by_login", stmt, _user)

    async def list_users(
        self, *, limit: int = 100, offset: int = 0, include_inactive: bool = True
    ) -> list[User]:
        stmt = select(users).order_by(users.c.id).limit(limit).offset(offset)
        if not include_inactive:
            stmt = stmt.where(users.c.is_active.is_(True))
        return await self._all("list_users", stmt, _user)

    async def search_users(self, query: str, *, limit: int = 20, offset: int = 0) -> list[User]:
        prefix = query.lower()
        stmt = (
            select(users)
            .where(
                users.c.is_active.is_(True),
                or_(
                    users.c.username_norm.startswith(prefix, autoescape=True),
                    func.lower(users.c.display_name).startswith(prefix, autoescape=True),
                    users.c.email.startswith(prefix, autoescape=True),
                ),
            )
            # NULLs sort first on SQLite and last on PostgreSQL: put them last on both.
            .order_by(users.c.username_norm.is_(None), users.c.username_norm, users.c.id)
            .limit(limit)
            .offset(offset)
        )
        return await self._all("search_users", stmt, _user)

    async def update_user(self, user_id: int, **fields: Any) -> User | None:
        unknown = set(fields) - USER_FIELDS
        if unknown:
            raise ValueError(f"cannot update user fields {sorted(unknown)}")
        if not fields:
            return await self.get_user(user_id)
        stmt = update(users).where(users.c.id == user_id).values(**fields).returning(*users.c)

        async def txn(conn: AsyncConnection) -> User | None:
            row = (await conn.execute(stmt)).first()
            return _user(row._mapping) if row else None

        return await self._txn("update_user", txn)

    async def anonymise_user(self, user_id: int, at: int) -> Anonymised | None:
        async def txn(conn: AsyncConnection) -> Anonymised | None:
            await self._unname(conn, user_id)
            result = await conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(
                    username=None,
                    username_norm=None,
                    email=None,
                    display_name="",
                    avatar_url=None,
                    # Empty never verifies as an argon2 hash: nobody can log in.
                    password_hash="",
                    is_active=False,
                    deleted_at=func.coalesce(users.c.deleted_at, at),
                )
            )
            if result.rowcount == 0:
                return None
            await conn.execute(
                update(sessions)
                .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
            gone = (
                await conn.execute(
                    delete(members)
                    .where(members.c.user_id == user_id)
                    .returning(members.c.conversation_id, members.c.role)
                )
            ).all()
            left: list[int] = []
            for chunk in chunks(sorted(cid for cid, _ in gone)):
                left.extend(
                    (
                        await conn.execute(
                            select(conversations.c.id).where(
                                conversations.c.id.in_(chunk),
                                conversations.c.kind != ConversationKind.DIRECT.value,
                            )
                        )
                    ).scalars()
                )
            # What it owned passes on as when an owner leaves.
            owned = sorted(cid for cid, role in gone if role == Role.OWNER.value)
            await _locked(conn, owned)
            heirs = [
                heir
                for conversation_id in owned
                if (heir := await _hand_on(conn, conversation_id)) is not None
            ]
            await conn.execute(delete(password_resets).where(password_resets.c.user_id == user_id))
            return Anonymised(tuple(sorted(left)), tuple(heirs))

        return await self._txn("anonymise_user", txn)

    async def _unname(self, conn: AsyncConnection, user_id: int) -> None:
        """Put "Deleted user" in place of ``user_id``'s name in every notice naming it."""
        named = select(notice_names.c.message_id).where(notice_names.c.user_id == user_id)
        ids = sorted(set((await conn.execute(named)).scalars()))
        for chunk in chunks(ids):
            texts = await conn.execute(
                select(messages.c.id, messages.c.content).where(
                    messages.c.id.in_(chunk), messages.c.deleted_at.is_(None)
                )
            )
            places: dict[int, list[NamedUser]] = {}
            for row in await conn.execute(
                select(notice_names).where(notice_names.c.message_id.in_(chunk))
            ):
                places.setdefault(row.message_id, []).append(
                    NamedUser(row.user_id, row.start, row.length)
                )
            contents: list[dict[str, Any]] = []
            renamed: list[dict[str, Any]] = []
            for message_id, text in texts:
                content, placed = without_user(text, places.get(message_id, ()), user_id)
                contents.append({"mid": message_id, "content": content})
                renamed.extend({"message_id": message_id, **_named_values(name)} for name in placed)
            if not contents:
                continue
            await conn.execute(
                update(messages)
                .where(messages.c.id == bindparam("mid"))
                .values(content=bindparam("content")),
                contents,
            )
            await conn.execute(
                delete(notice_names).where(
                    notice_names.c.message_id.in_([c["mid"] for c in contents])
                )
            )
            if renamed:
                await conn.execute(insert(notice_names), renamed)

    # -- sessions and tokens -----------------------------------------------------------

    async def create_session(self, session: Session, refresh_hash: str) -> None:
        async def txn(conn: AsyncConnection) -> None:
            await conn.execute(
                insert(sessions).values(
                    id=session.id,
                    user_id=session.user_id,
                    created_at=session.created_at,
                    last_seen_at=session.last_seen_at,
                    expires_at=session.expires_at,
                    revoked_at=session.revoked_at,
                    device=session.device,
                    ip=session.ip,
                )
            )
            await conn.execute(
                insert(refresh_tokens).values(
                    token_hash=refresh_hash, session_id=session.id, created_at=session.created_at
                )
            )

        await self._txn("create_session", txn)

    async def get_session(self, session_id: str) -> Session | None:
        stmt = select(sessions).where(sessions.c.id == session_id)
        return await self._one("get_session", stmt, _session)

    async def list_sessions(self, user_id: int, *, active_only: bool = True) -> list[Session]:
        stmt = (
            select(sessions)
            .where(sessions.c.user_id == user_id)
            .order_by(sessions.c.last_seen_at.desc(), sessions.c.id)
        )
        if active_only:
            stmt = stmt.where(sessions.c.revoked_at.is_(None), sessions.c.expires_at > now_ms())
        return await self._all("list_sessions", stmt, _session)

    async def touch_session(self, session_id: str, at: int, ip: str | None = None) -> None:
        values: dict[str, Any] = (
            {"last_seen_at": at} if ip is None else {"last_seen_at": at, "ip": ip}
        )
        stmt = update(sessions).where(sessions.c.id == session_id).values(values)
        await self._rowcount("touch_session", stmt)

    async def revoke_session(self, session_id: str, at: int) -> bool:
        stmt = (
            update(sessions)
            .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return await self._rowcount("revoke_session", stmt) > 0

    async def revoke_user_sessions(
        self, user_id: int, at: int, *, except_session: str | None = None
    ) -> list[str]:
        condition = and_(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        if except_session is not None:
            condition = and_(condition, sessions.c.id != except_session)
        stmt = update(sessions).where(condition).values(revoked_at=at).returning(sessions.c.id)

        async def txn(conn: AsyncConnection) -> list[str]:
            return sorted((await conn.execute(stmt)).scalars())

        return await self._txn("revoke_user_sessions", txn)

    async def rotate_refresh_token(
        self, token_hash: str, new_hash: str, at: int, expires_at: int
    ) -> RefreshResult:
        async def txn(conn: AsyncConnection) -> RefreshResult:
            stmt = (
                select(sessions, refresh_tokens.c.used_at.label("token_used_at"))
                .join(refresh_tokens, refresh_tokens.c.session_id == sessions.c.id)
                .where(refresh_tokens.c.token_hash == token_hash)
            )
            row = (await conn.execute(stmt)).first()
            if row is None:
                return RefreshResult(RefreshOutcome.UNKNOWN, None)
            session = _session(row._mapping)
            if session.revoked_at is not None or session.expires_at <= at:
                return RefreshResult(RefreshOutcome.REVOKED, session)
            # Conditional, so of two concurrent presenters exactly one claims the token.
            claimed = await conn.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.token_hash == token_hash, refresh_tokens.c.used_at.is_(None)
                )
                .values(used_at=at)
            )
            this_session = update(sessions).where(sessions.c.id == session.id)
            if row.token_used_at is not None or claimed.rowcount == 0:
                # A used token came back: stolen, or replayed by a confused client.
                # Either way nothing of this token family can be trusted any more.
                stmt2 = this_session.values(revoked_at=at).returning(*sessions.c)
                revoked = (await conn.execute(stmt2)).one()
                return RefreshResult(RefreshOutcome.REUSED, _session(revoked._mapping))
            await conn.execute(
                insert(refresh_tokens).values(
                    token_hash=new_hash, session_id=session.id, created_at=at
                )
            )
            stmt3 = this_session.values(expires_at=expires_at, last_seen_at=at)
            renewed = (await conn.execute(stmt3.returning(*sessions.c))).one()
            return RefreshResult(RefreshOutcome.OK, _session(renewed._mapping))

        return await self._txn("rotate_refresh_token", txn)

    async def create_password_reset(
        self, token_hash: str, user_id: int, at: int, expires_at: int
    ) -> None:
        stmt = insert(password_resets).values(
            token_hash=token_hash, user_id=user_id, created_at=at, expires_at=expires_at
        )
        await self._rowcount("create_password_reset", stmt)

    async def consume_password_reset(self, token_hash: str, at: int) -> int | None:
        # One conditional statement: two concurrent uses cannot both succeed.
        stmt = (
            update(password_resets)
            .where(
                password_resets.c.token_hash == token_hash,
                password_resets.c.used_at.is_(None),
                password_resets.c.expires_at > at,
            )
            .values(used_at=at)
            .returning(password_resets.c.user_id)
        )

        async def txn(conn: AsyncConnection) -> int | None:
            user_id: int | None = (await conn.execute(stmt)).scalar_one_or_none()
            return user_id

        return await self._txn("consume_password_reset", txn)

    # -- audit -----------------------------------------------------------------------

    async def add_audit(
        self,
        action: str,
        *,
        at: int,
        actor_id: int | None = None,
        target: str | None = None,
        ip: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        stmt = insert(audit_log).values(
            at=at, action=action, actor_id=actor_id, target=target, ip=ip, details=details or {}
        )
        await self._rowcount("add_audit", stmt)

    async def list_audit(
        self,
        *,
        limit: int = 50,
        before_id: int | None = None,
        action: str | None = None,
        actor_id: int | None = None,
    ) -> list[AuditEvent]:
        stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(audit_log.c.id < before_id)
        if action is not None:
            stmt = stmt.where(audit_log.c.action == action)
        if actor_id is not None:
            stmt = stmt.where(audit_log.c.actor_id == actor_id)
        return await self._all("list_audit", stmt, _audit)

    # -- conversations -----------------------------------------------------------------

    async def create_conversation(
        self,
        *,
        kind: ConversationKind,
        name: str | None,
        created_by: int | None,
        members: Sequence[tuple[int, Role]],
        at: int,
        topic: str | None = None,
    ) -> Conversation:
        if kind is ConversationKind.DIRECT:
            raise ValueError("direct conversations are made by get_or_create_direct")
        values = _conversation_values(kind, name, created_by, at)
        values["topic"] = topic
        roles: dict[int, Role] = {}
        for user_id, role in members:
            roles.setdefault(user_id, role)

        async def txn(conn: AsyncConnection) -> Conversation:
            stmt = insert(conversations).values(values).returning(conversations.c.id)
            conversation = _conversation({**values, "id": (await conn.execute(stmt)).scalar_one()})
            if roles:
                await conn.execute(
                    insert(schema.members),  # the argument `members` hides the table here
                    [_member_values(conversation.id, u, r, at, 0) for u, r in roles.items()],
                )
            return conversation

        return await self._txn("create_conversation", txn)

    async def update_conversation(
        self,
        conversation_id: int,
        *,
        name: str | None = None,
        topic: str | None = None,
        set_topic: bool = False,
    ) -> Conversation | None:
        async def txn(conn: AsyncConnection) -> Conversation | None:
            key = conversations.c.id == conversation_id
            found = (await conn.execute(select(conversations).where(key))).one_or_none()
            if found is None:
                return None
            values: dict[str, Any] = {}
            if name is not None:
                values["name"] = name
                if found.kind == ConversationKind.ROOM.value:
                    values["name_norm"] = name.lower()
            if set_topic:
                values["topic"] = topic
            if values:
                await conn.execute(update(conversations).where(key).values(values))
            return _conversation({**found._mapping, **values})

        return await self._txn("update_conversation", txn)

    async def get_or_create_direct(
        self, user_a: int, user_b: int, at: int
    ) -> tuple[Conversation, bool]:
        if user_a == user_b:
            raise ValueError("a direct conversation needs two distinct users")
        low, high = sorted((user_a, user_b))
        values = _conversation_values(ConversationKind.DIRECT, None, user_a, at)
        values["direct_key"] = f"{low}:{high}"

        async def txn(conn: AsyncConnection) -> tuple[Conversation, bool]:
            # Insert-or-ignore, then read: a concurrent caller's insert waits on the
            # unique index, does nothing, and then reads the winner's committed row.
            stmt = self._insert_ignore(conversations, "direct_key").values(values)
            new_id = (await conn.execute(stmt.returning(conversations.c.id))).scalar_one_or_none()
            if new_id is not None:
                await conn.execute(
                    insert(members),
                    [_member_values(new_id, user, Role.MEMBER, at, 0) for user in (low, high)],
                )
            stmt2 = select(conversations).where(conversations.c.direct_key == values["direct_key"])
            return _conversation((await conn.execute(stmt2)).one()._mapping), new_id is not None

        return await self._txn("get_or_create_direct", txn)

    async def get_conversation(self, conversation_id: int) -> Conversation | None:
        stmt = select(conversations).where(conversations.c.id == conversation_id)
        return await self._one("get_conversation", stmt, _conversation)

    async def last_seqs(self, conversation_ids: Iterable[int]) -> dict[int, int]:
        found: dict[int, int] = {}
        for chunk in chunks(list(conversation_ids)):
            stmt = select(conversations.c.id, conversations.c.last_seq).where(
                conversations.c.id.in_(chunk)
            )
            found.update(
                await self._all("last_seqs", stmt, lambda row: (row["id"], row["last_seq"]))
            )
        return found

    async def get_room_by_name(self, name: str) -> Conversation | None:
        stmt = select(conversations).where(
            conversations.c.name_norm == name.lower(),
            conversations.c.kind == ConversationKind.ROOM.value,
        )
        return await self._one("get_room_by_name", stmt, _conversation)

    async def list_rooms(
        self, *, query: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[tuple[Conversation, int]]:
        count = (
            select(func.count())
            .where(members.c.conversation_id == conversations.c.id)
            .scalar_subquery()
        )
        stmt = (
            select(conversations, count.label("member_count"))
            .where(conversations.c.kind == ConversationKind.ROOM.value)
            .order_by(conversations.c.name_norm, conversations.c.id)
            .limit(limit)
            .offset(offset)
        )
        if query:
            stmt = stmt.where(conversations.c.name_norm.startswith(query.lower(), autoescape=True))
        return await self._all("list_rooms", stmt, lambda m: (_conversation(m), m["member_count"]))

    async def add_member(
        self, conversation_id: int, user_id: int, role: Role, at: int
    ) -> Member | None:
        async def txn(conn: AsyncConnection) -> Member | None:
            # Locked (as leaving and deleting an account lock it before handing the
            # conversation on), so two newcomers to an ownerless room cannot both take
            # it, and a join and the owner's leaving cannot both miss the other.
            stmt = (
                select(conversations.c.last_seq, conversations.c.kind)
                .where(conversations.c.id == conversation_id)
                .with_for_update(key_share=True)
            )
            found = (await conn.execute(stmt)).first()
            user = await conn.execute(select(exists().where(users.c.id == user_id)))
            if found is None or not user.scalar_one():
                return None
            last_seq, kind = found
            given = role
            if given is not Role.OWNER and kind != ConversationKind.DIRECT.value:
                owner = exists().where(
                    members.c.conversation_id == conversation_id,
                    members.c.role == Role.OWNER.value,
                )
                if not (await conn.execute(select(owner))).scalar_one():
                    given = Role.OWNER  # everyone left: the first to come back owns it
            values = _member_values(conversation_id, user_id, given, at, last_seq)
            # A mute outlives the membership: coming back does not lift it.
            values["muted_until"] = await self._standing_mute(conn, conversation_id, user_id)
            ignore = self._insert_ignore(members, "conversation_id", "user_id")
            result = await conn.execute(ignore.values(values))
            return _member(values) if result.rowcount > 0 else None

        return await self._txn("add_member", txn)

    async def remove_member(self, conversation_id: int, user_id: int) -> bool:
        stmt = delete(members).where(
            members.c.conversation_id == conversation_id, members.c.user_id == user_id
        )
        return await self._rowcount("remove_member", stmt) > 0

    async def leave_conversation(
        self, conversation_id: int, user_id: int
    ) -> tuple[bool, Member | None]:
        async def txn(conn: AsyncConnection) -> tuple[bool, Member | None]:
            await _locked(conn, [conversation_id])
            # The role comes from the deleted row itself: on PostgreSQL, a member who
            # was made owner by a concurrent departure while this one waited leaves as
            # the owner, and hands it on in turn.
            gone = await conn.execute(
                delete(members)
                .where(members.c.conversation_id == conversation_id, members.c.user_id == user_id)
                .returning(members.c.role)
            )
            role = gone.scalar_one_or_none()
            if role is None:
                return False, None
            if role != Role.OWNER.value:
                return True, None
            return True, await _hand_on(conn, conversation_id)

        return await self._txn("leave_conversation", txn)

    async def set_member_role(self, conversation_id: int, user_id: int, role: Role) -> bool:
        stmt = (
            update(members)
            .where(members.c.conversation_id == conversation_id, members.c.user_id == user_id)
            .values(role=role.value)
        )
        return await self._rowcount("set_member_role", stmt) > 0

    async def get_member(self, conversation_id: int, user_id: int) -> Member | None:
        stmt = select(members).where(
            members.c.conversation_id == conversation_id, members.c.user_id == user_id
        )
        return await self._one("get_member", stmt, _member)

    async def list_members(self, conversation_id: int) -> list[Member]:
        stmt = (
            select(members)
            .where(members.c.conversation_id == conversation_id)
            .order_by(members.c.joined_at, members.c.user_id)
        )
        return await self._all("list_members", stmt, _member)

    async def member_ids(self, conversation_id: int) -> list[int]:
        stmt = (
            select(members.c.user_id)
            .where(members.c.conversation_id == conversation_id)
            .order_by(members.c.user_id)
        )
        return await self._scalars("member_ids", stmt)

    async def count_members(self, conversation_id: int) -> int:
        stmt = (
            select(func.count())
            .select_from(members)
            .where(members.c.conversation_id == conversation_id)
        )

        async def txn(conn: AsyncConnection) -> int:
            return int((await conn.execute(stmt)).scalar_one())

        return await self._txn("count_members", txn, write=False)

    async def user_conversation_ids(self, user_id: int) -> list[int]:
        stmt = (
            select(members.c.conversation_id)
            .where(members.c.user_id == user_id)
            .order_by(members.c.conversation_id)
        )
        return await self._scalars("user_conversation_ids", stmt)

    async def memberships(self, user_ids: Sequence[int]) -> dict[int, dict[int, int]]:
        async def txn(conn: AsyncConnection) -> dict[int, dict[int, int]]:
            found: dict[int, dict[int, int]] = {}
            for chunk in chunks(sorted(set(user_ids))):
                stmt = select(
                    members.c.user_id, members.c.conversation_id, members.c.delivered_seq
                ).where(members.c.user_id.in_(chunk))
                for user_id, conversation_id, delivered in await conn.execute(stmt):
                    found.setdefault(user_id, {})[conversation_id] = delivered
            return found

        return await self._txn("memberships", txn, write=False)

    async def list_user_conversations(self, user_id: int) -> list[ConversationSummary]:
        last = messages.alias("last")
        everyone = members.alias("everyone")
        member_count = (
            select(func.count())
            .where(everyone.c.conversation_id == conversations.c.id)
            .scalar_subquery()
        )
        # Walks the (conversation_id, seq) index from the read cursor: the cost grows
        # with the unread count, not with the length of the history. Thread replies
        # have their own read state, mutation entries are not messages, and a deleted
        # message (a tombstone) is nothing left to read.
        from_others = and_(
            messages.c.conversation_id == conversations.c.id,
            messages.c.seq > members.c.read_seq,
            messages.c.kind == MessageKind.TEXT.value,
            messages.c.thread_root_id.is_(None),
            messages.c.deleted_at.is_(None),
            messages.c.sender_id.is_distinct_from(user_id),
        )
        unread = select(func.count()).where(from_others).scalar_subquery()
        mine = and_(members.c.conversation_id == conversations.c.id, members.c.user_id == user_id)
        # The newest message proper, walking back past mutation entries and thread
        # replies (usually none or a few) on the same index.
        latest_seq = (
            select(func.max(messages.c.seq))
            .where(
                messages.c.conversation_id == conversations.c.id,
                messages.c.kind.in_((MessageKind.TEXT.value, MessageKind.SYSTEM.value)),
                messages.c.thread_root_id.is_(None),
            )
            .scalar_subquery()
        )
        latest = and_(last.c.conversation_id == conversations.c.id, last.c.seq == latest_seq)

        async def txn(conn: AsyncConnection) -> list[ConversationSummary]:
            name = (
                await conn.execute(select(users.c.username_norm).where(users.c.id == user_id))
            ).scalar_one_or_none()
            if name:
                mentioned = or_(
                    messages.c.mentions.contains(f",{name},", autoescape=True),
                    messages.c.mentions.contains(f",{MENTION_ROOM},", autoescape=True),
                )
            else:
                mentioned = messages.c.mentions.contains(f",{MENTION_ROOM},", autoescape=True)
            mention_count = select(func.count()).where(from_others, mentioned).scalar_subquery()
            stmt = (
                select(
                    conversations,
                    members,
                    last,
                    member_count.label("n"),
                    unread.label("unread"),
                    mention_count.label("mentions"),
                )
                .select_from(conversations.join(members, mine).outerjoin(last, latest))
                .order_by(
                    func.coalesce(
                        conversations.c.last_message_at, conversations.c.created_at
                    ).desc(),
                    conversations.c.id.desc(),
                )
                .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
            )
            return [summary(row._mapping) for row in await conn.execute(stmt)]

        def summary(m: Row) -> ConversationSummary:
            return ConversationSummary(
                conversation=_conversation(m, "conversations_"),
                member=_member(m, "members_"),
                member_count=m["n"],
                unread=m["unread"],
                last_message=_message(m, "last_") if m["last_id"] is not None else None,
                mentions=m["mentions"],
            )

        return await self._txn("list_user_conversations", txn, write=False)

    async def contacts(self, user_id: int) -> set[int]:
        mine = members.alias("mine")
        theirs = members.alias("theirs")
        stmt = (
            select(theirs.c.user_id)
            .distinct()
            .select_from(mine.join(theirs, theirs.c.conversation_id == mine.c.conversation_id))
            .where(mine.c.user_id == user_id, theirs.c.user_id != user_id)
        )
        return set(await self._scalars("contacts", stmt))

    # -- messages ----------------------------------------------------------------------

    async def append_messages(self, batch: Sequence[NewMessage], at: int) -> list[Appended]:
        if not batch:
            return []
        try:
            return await self._append_batch(batch, at)
        except PalaverError as exc:
            if exc.code is not ErrorCode.CONFLICT or exc.field != "client_msg_id":
                raise
        # Another node committed one of these client ids between our lookup and our
        # insert. Nothing of ours committed; the second attempt finds the original.
        return await self._append_batch(batch, at)

    async def _append_batch(self, batch: Sequence[NewMessage], at: int) -> list[Appended]:
        """One attempt at :meth:`append_messages` in one transaction. Engines override
        it with a path that skips SQLAlchemy; this one is the portable reference."""

        async def txn(conn: AsyncConnection) -> list[Appended]:
            return await self._append(conn, batch, at)

        return await self._txn("append_messages", txn)

    async def _append(
        self, conn: AsyncConnection, batch: Sequence[NewMessage], at: int
    ) -> list[Appended]:
        if named := named_uploads(batch):
            # Uploads before conversations, as deleting a message locks them.
            found = await conn.execute(
                select(uploads.c.id, uploads.c.conversation_id)
                .where(uploads.c.id.in_(sorted({u for u, _ in named})))
                .order_by(uploads.c.id)
                .with_for_update(key_share=True)
            )
            require_uploads(named, found.all())
        # Lock first: concurrent writers of these conversations (on any process) wait
        # here until we commit, so last_seq below is final and sequences stay gapless,
        # and a retried send racing its original finds it in the lookup that follows.
        last_seq = await self._lock_conversations(conn, {new.conversation_id for new in batch})
        existing = await self._find_client_ids(conn, batch)
        plan = AppendPlan(batch, last_seq, existing)
        if writers := plan.writers():
            present: set[tuple[int, int]] = set()
            for pairs in chunks(sorted(writers)):
                # Row values: one primary-key probe per pair (two IN lists would read
                # every user of the batch in every conversation of it).
                probe = select(members.c.conversation_id, members.c.user_id).where(
                    tuple_(members.c.conversation_id, members.c.user_id).in_(pairs)
                )
                present.update((cid, uid) for cid, uid in await conn.execute(probe))
            if not writers <= present:
                raise not_found()
        if plan.fresh:
            await conn.execute(
                update(conversations)
                .where(conversations.c.id == bindparam("cid"))
                .values(last_seq=bindparam("seq"), last_message_at=at),
                [{"cid": cid, "seq": seq} for cid, seq in plan.bumped()],
            )
            rows = [_message_values(batch[index], seq, at) for index, seq in plan.fresh]
            # Matching ids by (conversation, seq) instead of asking for RETURNING in
            # parameter order keeps this one multi-row INSERT on both engines (SQLite
            # would otherwise fall back to one statement per message).
            stmt = insert(messages).returning(
                messages.c.id, messages.c.conversation_id, messages.c.seq
            )
            returned = (await conn.execute(stmt, rows)).all()
            plan.stored({(r.conversation_id, r.seq): r.id for r in returned}, at)
            if attached := plan.attached():
                stamp = (
                    update(uploads)
                    .where(
                        uploads.c.id == bindparam("uid"),
                        uploads.c.conversation_id == bindparam("cid"),
                        uploads.c.attached_at.is_(None),
                    )
                    .values(attached_at=at)
                )
                await conn.execute(stamp, [{"uid": u, "cid": c} for u, c in attached])
        return plan.results()

    async def _lock_conversations(
        self, conn: AsyncConnection, conversation_ids: set[int]
    ) -> dict[int, int]:
        """Lock the rows (see :func:`_locked`) and read last_seq; ``NOT_FOUND`` unless
        every one exists."""
        last_seq = await _locked(conn, conversation_ids)
        if len(last_seq) != len(conversation_ids):
            raise not_found()
        return last_seq

    async def _find_client_ids(
        self, conn: AsyncConnection, batch: Sequence[NewMessage]
    ) -> dict[ClientKey, Message]:
        keys = sorted({key for new in batch if (key := dedup_key(new)) is not None})
        found: dict[ClientKey, Message] = {}
        for chunk in chunks(keys):
            # IN lists use the client-id index on both engines (row-value IN lists are
            # not portable); only exact keys are kept below.
            stmt = select(messages).where(
                messages.c.sender_id.in_({sender for sender, _, _ in chunk}),
                messages.c.conversation_id.in_({cid for _, cid, _ in chunk}),
                messages.c.client_msg_id.in_({client_id for _, _, client_id in chunk}),
            )
            for row in await conn.execute(stmt):
                found[(row.sender_id, row.conversation_id, row.client_msg_id)] = _message(
                    row._mapping
                )
        return {key: found[key] for key in keys if key in found}

    async def append_notice(self, conversation_id: int, notice: Notice, at: int) -> Message:
        async def txn(conn: AsyncConnection) -> Message:
            # The row lock a send takes: sequences stay gapless and in commit order.
            last_seq = await self._lock_conversations(conn, {conversation_id})
            seq = last_seq[conversation_id] + 1
            await conn.execute(
                update(conversations)
                .where(conversations.c.id == conversation_id)
                .values(last_seq=seq, last_message_at=at)
            )
            new = NewMessage(conversation_id, None, notice.text, kind=MessageKind.SYSTEM)
            values = _message_values(new, seq, at)
            stmt = insert(messages).values(values).returning(messages.c.id)
            message_id = (await conn.execute(stmt)).scalar_one()
            if notice.names:
                await conn.execute(
                    insert(notice_names),
                    [{"message_id": message_id, **_named_values(n)} for n in notice.names],
                )
            return _message({**values, "id": message_id, "edited_at": None, "deleted_at": None})

        return await self._txn("append_notice", txn)

    async def get_messages(
        self,
        conversation_id: int,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        stmt = select(messages).where(messages.c.conversation_id == conversation_id).limit(limit)
        if before_seq is not None:
            stmt = stmt.where(messages.c.seq < before_seq)
        if after_seq is not None:
            stmt = stmt.where(messages.c.seq > after_seq).order_by(messages.c.seq)
            return await self._all("get_messages", stmt, _message)
        newest_first = await self._all(
            "get_messages", stmt.order_by(messages.c.seq.desc()), _message
        )
        return newest_first[::-1]

    async def get_message(self, message_id: int) -> Message | None:
        stmt = select(messages).where(messages.c.id == message_id)
        return await self._one("get_message", stmt, _message)

    async def advance_cursors(self, updates: Sequence[CursorUpdate]) -> list[Member]:
        wanted = cursor_targets(updates)
        keys = sorted(wanted)

        async def txn(conn: AsyncConnection) -> list[Member]:
            changed: list[Member] = []
            for chunk in chunks(keys):
                stmt = (
                    select(members, conversations.c.last_seq)
                    .join(conversations, conversations.c.id == members.c.conversation_id)
                    .where(
                        members.c.conversation_id.in_({c for c, _ in chunk}),
                        members.c.user_id.in_({u for _, u in chunk}),
                    )
                    .order_by(members.c.conversation_id, members.c.user_id)
                    # Two concurrent advances of one member must not both read the old
                    # cursor, or the slower one could write it backwards.
                    .with_for_update(of=members)
                )
                for row in await conn.execute(stmt):
                    old = _member(row._mapping)
                    target = wanted.get((old.conversation_id, old.user_id))
                    if target is not None and (moved := moved_cursor(old, row.last_seq, target)):
                        changed.append(moved)
            if changed:
                await conn.execute(
                    update(members)
                    .where(
                        members.c.conversation_id == bindparam("cid"),
                        members.c.user_id == bindparam("uid"),
                    )
                    .values(read_seq=bindparam("read"), delivered_seq=bindparam("delivered")),
                    [
                        {
                            "cid": m.conversation_id,
                            "uid": m.user_id,
                            "read": m.read_seq,
                            "delivered": m.delivered_seq,
                        }
                        for m in changed
                    ],
                )
            return changed

        return await self._txn("advance_cursors", txn) if keys else []

    async def purge_messages_before(self, cutoff: int) -> int:
        async def txn(conn: AsyncConnection) -> int:
            stmt = (
                select(messages.c.conversation_id, func.max(messages.c.seq))
                .where(messages.c.created_at < cutoff)
                .group_by(messages.c.conversation_id)
                .order_by(messages.c.conversation_id)
            )
            horizons = [(row[0], row[1]) for row in await conn.execute(stmt)]
            deleted = 0
            for conversation_id, max_seq in horizons:
                await conn.execute(
                    update(conversations)
                    .where(
                        conversations.c.id == conversation_id, conversations.c.min_seq <= max_seq
                    )
                    .values(min_seq=max_seq + 1)
                )
                # Everything up to the newest expired message goes, so what remains is
                # one contiguous range [min_seq, last_seq] even when node clocks
                # disagree a little about created_at.
                result = await conn.execute(
                    delete(messages).where(
                        messages.c.conversation_id == conversation_id, messages.c.seq <= max_seq
                    )
                )
                deleted += result.rowcount
            return deleted

        return await self._txn("purge_messages_before", txn)


#: What makes a client id unique: ``(sender_id, conversation_id, client_msg_id)``.
ClientKey = tuple[int, int, str]


def dedup_key(new: NewMessage) -> ClientKey | None:
    # Without a sender the unique index cannot apply (NULLs are distinct).
    if new.sender_id is None or new.client_msg_id is None:
        return None
    return (new.sender_id, new.conversation_id, new.client_msg_id)


class AppendPlan:
    """What one attempt at :meth:`Store.append_messages` stores, engine-independent.

    Built from the batch, each conversation's ``last_seq`` (read under its row lock)
    and the stored messages with the batch's client ids: a message whose client id is
    stored is answered with the original, a repeat within the batch with its first
    copy, and the rest (:attr:`fresh`, as ``(index, seq)`` in input order) get the next
    sequence numbers of their conversation. :meth:`stored` takes the new rows' ids,
    :meth:`results` answers in input order.
    """

    __slots__ = ("_batch", "_copies", "_results", "_start", "fresh", "last_seq")

    def __init__(
        self,
        batch: Sequence[NewMessage],
        last_seq: dict[int, int],
        existing: Mapping[ClientKey, Message],
    ) -> None:
        self._batch = batch
        self._start = dict(last_seq)
        self.last_seq = last_seq
        self._results: list[Appended | None] = [None] * len(batch)
        self._copies: list[tuple[int, int]] = []  # (index, index of the first with its key)
        self.fresh: list[tuple[int, int]] = []
        first: dict[ClientKey, int] = {}
        for index, new in enumerate(batch):
            key = dedup_key(new)
            if key is not None:
                if key in existing:
                    self._results[index] = Appended(existing[key], duplicate=True)
                    continue
                if key in first:
                    self._copies.append((index, first[key]))
                    continue
                first[key] = index
            seq = last_seq[new.conversation_id] + 1
            last_seq[new.conversation_id] = seq
            self.fresh.append((index, seq))

    def writers(self) -> set[tuple[int, int]]:
        """``(conversation_id, sender_id)`` of the new messages that have a sender: each
        must be a member when they commit. A repeat of a stored message is answered
        whatever the sender's membership now (it was one when it sent it)."""
        return {
            (new.conversation_id, new.sender_id)
            for index, _ in self.fresh
            if (new := self._batch[index]).sender_id is not None
        }

    def bumped(self) -> list[tuple[int, int]]:
        """``(conversation_id, new last_seq)`` of each conversation that got messages,
        in id order."""
        return sorted((cid, seq) for cid, seq in self.last_seq.items() if seq != self._start[cid])

    def stored(self, ids: Mapping[tuple[int, int], int], at: int) -> None:
        """Record the inserted rows' ids, keyed by ``(conversation_id, seq)``."""
        for index, seq in self.fresh:
            new = self._batch[index]
            message = Message(
                id=ids[(new.conversation_id, seq)],
                conversation_id=new.conversation_id,
                seq=seq,
                sender_id=new.sender_id,
                kind=new.kind,
                content=new.content,
                created_at=at,
                client_msg_id=new.client_msg_id,
                ref_id=new.ref_id,
                reply_to_id=new.reply_to_id,
                thread_root_id=new.thread_root_id,
                attachments=new.attachments,
                mentions=new.mentions,
            )
            self._results[index] = Appended(message, duplicate=False)

    def attached(self) -> list[tuple[int, int]]:
        """``(upload id, conversation id)`` of each upload the new messages carry: the
        transaction that stores them stamps ``attached_at`` on those uploads, so an
        upload never expires under a stored message, and a refused send leaves its
        uploads to expire."""
        return [
            (upload_id, new.conversation_id)
            for index, _ in self.fresh
            if (new := self._batch[index]).attachments
            for upload_id in attached_upload_ids(new)
        ]

    def results(self) -> list[Appended]:
        for index, original in self._copies:
            stored = self._results[original]
            assert stored is not None
            self._results[index] = Appended(stored.message, duplicate=True)
        return [result for result in self._results if result is not None]


def named_uploads(batch: Sequence[NewMessage]) -> set[tuple[int, int]]:
    """``(upload id, conversation id)`` of every upload the messages of ``batch`` name."""
    return {
        (upload_id, new.conversation_id)
        for new in batch
        if new.attachments
        for upload_id in attached_upload_ids(new)
    }


def require_uploads(named: set[tuple[int, int]], present: Iterable[Sequence[int]]) -> None:
    """``NOT_FOUND`` (upload) unless every upload in ``named`` is ``present`` in the
    conversation of the message naming it.

    Run in the append's transaction with those upload rows locked: deleting a message
    deletes the uploads no other stored message carries, and a message committed just
    after that, carrying one of them, would point at nothing."""
    if named - {(row[0], row[1]) for row in present}:
        raise not_found("upload")


def attached_upload_ids(new: NewMessage) -> list[int]:
    """The upload ids a message's ``attachments`` name (elements without an integer
    ``id`` name no upload)."""
    return [a["id"] for a in new.attachments if isinstance(a.get("id"), int)]


async def _locked(conn: AsyncConnection, conversation_ids: Iterable[int]) -> dict[int, int]:
    """Lock conversation rows, in id order so that no two transactions deadlock, and
    return the last_seq of those that exist.

    Appends lock them to number messages; joins, departures and account deletions (see
    ``add_member``), so that a newcomer either commits before an heir is picked and is
    seen as one, or waits and finds the heir: never neither.
    """
    last_seq: dict[int, int] = {}
    for chunk in chunks(sorted(set(conversation_ids))):
        stmt = (
            select(conversations.c.id, conversations.c.last_seq)
            .where(conversations.c.id.in_(chunk))
            .order_by(conversations.c.id)
            # NO KEY UPDATE, the lock an UPDATE of last_seq takes anyway: it leaves
            # foreign-key checks (new members of the conversation) unblocked.
            .with_for_update(key_share=True)
        )
        last_seq.update((row.id, row.last_seq) for row in await conn.execute(stmt))
    return last_seq


async def _hand_on(conn: AsyncConnection, conversation_id: int) -> Member | None:
    """Make the heir of a conversation whose owner just went its owner: the admin who
    joined first, else the member who did; ``None`` when nobody is left."""
    in_conversation = members.c.conversation_id == conversation_id
    # Accounts that can still sign in first (a deactivated owner could moderate
    # nothing), then admins, then by seniority; the user id settles members who joined
    # in the same millisecond (a group's first members), so every node picks alike.
    heirs = (
        select(members)
        .join(users, users.c.id == members.c.user_id)
        .where(in_conversation)
        .order_by(
            case((users.c.is_active, 0), else_=1),
            case((members.c.role == Role.ADMIN.value, 0), else_=1),
            members.c.joined_at,
            members.c.user_id,
        )
        .limit(1)
    )
    while (row := (await conn.execute(heirs)).first()) is not None:
        heir = _member(row._mapping)
        promoted = await conn.execute(
            update(members)
            .where(in_conversation, members.c.user_id == heir.user_id)
            .values(role=Role.OWNER.value)
        )
        if promoted.rowcount:
            return replace(heir, role=Role.OWNER)
        # The heir left between the two statements (PostgreSQL, read committed): the
        # next query sees that and names the next one.
    return None


def _named_values(name: NamedUser) -> dict[str, Any]:
    return {"user_id": name.user_id, "start": name.start, "length": name.length}


def _message_values(new: NewMessage, seq: int, at: int) -> dict[str, Any]:
    return {
        "conversation_id": new.conversation_id,
        "seq": seq,
        "sender_id": new.sender_id,
        "kind": new.kind.value,
        "content": new.content,
        "client_msg_id": new.client_msg_id,
        "created_at": at,
        "ref_id": new.ref_id,
        "reply_to_id": new.reply_to_id,
        "thread_root_id": new.thread_root_id,
        "attachments": list(new.attachments) if new.attachments else None,
        "mentions": encode_mentions(new.mentions),
    }


def _conversation_values(
    kind: ConversationKind, name: str | None, created_by: int | None, at: int
) -> dict[str, Any]:
    return {
        "kind": kind.value,
        "name": name,
        # Only rooms are addressed by name; groups may share one.
        "name_norm": name.lower() if kind is ConversationKind.ROOM and name else None,
        "direct_key": None,
        "topic": None,
        "created_by": created_by,
        "created_at": at,
        "last_seq": 0,
        "min_seq": 1,
        "last_message_at": None,
    }


def _member_values(
    conversation_id: int, user_id: int, role: Role, at: int, seq: int
) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "user_id": user_id,
        "role": role.value,
        "joined_at": at,
        "read_seq": seq,
        "delivered_seq": seq,
        "muted_until": None,
        "notify_level": "all",
        "notify_muted_until": None,
    }


def alembic_config() -> Config:
    """An Alembic configuration for the migrations shipped in this package."""
    config = Config()
    config.set_main_option("script_location", "palaver.store:migrations")
    # Without it Alembic warns about legacy path splitting (there are no paths here).
    config.set_main_option("path_separator", "os")
    return config


def upgrade_head(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def downgrade_to(connection: Connection, *, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def _malformed() -> PalaverError:
    return PalaverError(
        ErrorCode.VALIDATION_ERROR, "a number is out of range or a value is malformed"
    )


class _Guard:
    """See :meth:`SqlStore._guard`."""

    __slots__ = ("_name", "_start", "_store")

    def __init__(self, store: SqlStore, name: str) -> None:
        self._store = store
        self._name = name
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = time.perf_counter()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        store = self._store
        try:
            if exc is not None:
                translated = store._translated(self._name, exc)
                if translated is not None:
                    raise translated from exc
        finally:
            if store.on_txn is not None:
                try:
                    store.on_txn(self._name, time.perf_counter() - self._start)
                except Exception:
                    # A metrics hook must never turn a committed write into an error
                    # that the caller would report (and retry) as a failure.
                    log.exception("on_txn hook failed for %s", self._name)
