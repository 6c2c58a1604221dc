"""Full-text search in the store: the indexer's pass and the search query, per engine.

SQLite: ``message_search`` is an FTS5 table (trigram tokenizer) whose rowid is the
message id; filters join ``messages`` by primary key. PostgreSQL: ``message_search`` is a
plain table with the filter columns copied in, a pg_trgm GIN index on the text (any
substring of 3 characters or more) and a ``simple`` tsvector GIN index (whole words).
Both hold the normalised text (:func:`palaver.core.search.normalize`).

Indexing runs off the send path (:class:`palaver.services.search.SearchIndexer`): each
pass reads messages after a watermark kept in ``search_state``, indexes them and moves
the watermark. Passes are idempotent, so several nodes can run them on one database.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

from palaver.core.models import Message, MessageKind, now_ms
from palaver.core.search import IndexProgress, SearchFilter, advance_watermark, normalize
from palaver.store.schema import messages, search_state
from palaver.store.sql import MESSAGE_COLUMNS, SqlStore, message_from_columns

#: The tables each engine's migration creates for search outside ``schema.metadata``
#: (FTS5 keeps its data in shadow tables named after the virtual table).
SEARCH_TABLES: dict[str, frozenset[str]] = {
    "sqlite": frozenset(
        {
            "message_search",
            "message_search_config",
            "message_search_content",
            "message_search_data",
            "message_search_docsize",
            "message_search_idx",
        }
    ),
    "postgresql": frozenset({"message_search"}),
}

WATERMARK = "messages"
#: Messages one pass reads at most: small enough that a pass on SQLite holds the write
#: lock for a few milliseconds only.
INDEX_BATCH = 500
#: How long a hole in the message ids may be an uncommitted transaction (see
#: :func:`palaver.core.search.advance_watermark`): far longer than any append takes.
GAP_GRACE_MS = 10_000

_COLUMNS = ", ".join(f"m.{name.strip()}" for name in MESSAGE_COLUMNS.split(","))
_TEXT = MessageKind.TEXT.value
_EDIT = MessageKind.EDIT.value
_DELETE = MessageKind.DELETE.value


@dataclass(frozen=True, slots=True)
class SearchDoc:
    """One message as the index stores it."""

    message_id: int
    conversation_id: int
    sender_id: int | None
    created_at: int
    body: str


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SearchStore(SqlStore):
    """The search methods shared by both engines; subclasses write the SQL."""

    async def search_backlog(self) -> bool:
        """Whether messages past the watermark exist (one cheap read, for polling)."""

        async def txn(conn: AsyncConnection) -> bool:
            top = (await conn.execute(select(func.max(messages.c.id)))).scalar()
            mark = (
                await conn.execute(
                    select(search_state.c.last_id).where(search_state.c.name == WATERMARK)
                )
            ).scalar()
            return (top or 0) > (mark or 0)

        return await self._txn("search_backlog", txn, write=False)

    async def index_pending(
        self, *, batch: int = INDEX_BATCH, now: int | None = None
    ) -> IndexProgress:
        """Index up to ``batch`` entries after the watermark and move it. Text messages
        are indexed, ``edit`` entries re-index the message they edit, ``delete``
        entries remove it. Safe to run on several nodes at once."""

        async def txn(conn: AsyncConnection) -> IndexProgress:
            watermark = await self._lock_watermark(conn)
            rows = (
                await conn.execute(
                    select(
                        messages.c.id,
                        messages.c.conversation_id,
                        messages.c.sender_id,
                        messages.c.kind,
                        messages.c.content,
                        messages.c.created_at,
                        messages.c.ref_id,
                        messages.c.deleted_at,
                    )
                    .where(messages.c.id > watermark)
                    .order_by(messages.c.id)
                    .limit(batch)
                )
            ).all()
            edited = await self._originals(
                conn, {r.ref_id for r in rows if r.kind == _EDIT and r.ref_id is not None}
            )
            docs: dict[int, SearchDoc] = {}
            gone: set[int] = set()
            # In stream order, so a message edited then deleted in one batch ends deleted.
            for r in rows:
                if r.kind == _TEXT and r.deleted_at is None:
                    docs[r.id] = SearchDoc(
                        r.id, r.conversation_id, r.sender_id, r.created_at, normalize(r.content)
                    )
                elif r.kind == _EDIT and r.ref_id in edited and r.ref_id not in gone:
                    original = edited[r.ref_id]
                    docs[r.ref_id] = SearchDoc(
                        original.id,
                        original.conversation_id,
                        original.sender_id,
                        original.created_at,
                        normalize(r.content),
                    )
                elif r.kind == _DELETE and r.ref_id is not None:
                    docs.pop(r.ref_id, None)
                    gone.add(r.ref_id)
            if docs:
                await self._index_docs(conn, list(docs.values()))
            if gone:
                await self._unindex(conn, sorted(gone))
            moved = advance_watermark(
                watermark,
                [(r.id, r.created_at) for r in rows],
                now if now is not None else now_ms(),
                GAP_GRACE_MS,
            )
            if moved != watermark:
                await conn.execute(
                    update(search_state)
                    .where(search_state.c.name == WATERMARK)
                    .values(last_id=moved)
                )
            return IndexProgress(len(docs), watermark, moved)

        return await self._txn("index_messages", txn)

    async def _originals(self, conn: AsyncConnection, ids: set[int]) -> dict[int, Any]:
        """The edited messages that are still searchable (text, not deleted)."""
        if not ids:
            return {}
        stmt = select(
            messages.c.id, messages.c.conversation_id, messages.c.sender_id, messages.c.created_at
        ).where(
            messages.c.id.in_(sorted(ids)),
            messages.c.kind == _TEXT,
            messages.c.deleted_at.is_(None),
        )
        return {row.id: row for row in await conn.execute(stmt)}

    async def unindex_messages(self, message_ids: Sequence[int]) -> None:
        if not message_ids:
            return

        async def txn(conn: AsyncConnection) -> None:
            await self._unindex(conn, message_ids)

        await self._txn("unindex_messages", txn)

    async def _lock_watermark(self, conn: AsyncConnection) -> int:
        """The watermark, locked until the transaction ends (nodes take turns)."""
        stmt = (
            select(search_state.c.last_id).where(search_state.c.name == WATERMARK).with_for_update()
        )
        mark = (await conn.execute(stmt)).scalar()
        if mark is None:
            await conn.execute(
                self._insert_ignore(search_state, "name").values(name=WATERMARK, last_id=0)
            )
            mark = (await conn.execute(stmt)).scalar()
        return int(mark or 0)

    async def search_messages(self, search: SearchFilter) -> list[Message]:
        """Messages matching ``search``, newest first (see :class:`SearchFilter`)."""
        if not search.conversation_ids:
            return []
        stmt, params = self._search_sql(search)

        async def txn(conn: AsyncConnection) -> list[Message]:
            return [message_from_columns(row) for row in await conn.execute(stmt, params)]

        return await self._txn("search_messages", txn, write=False)

    @abc.abstractmethod
    async def _index_docs(self, conn: AsyncConnection, docs: Sequence[SearchDoc]) -> None:
        """Insert or replace these documents in the index."""

    @abc.abstractmethod
    async def _unindex(self, conn: AsyncConnection, message_ids: Sequence[int]) -> None:
        """Remove messages from the index."""

    @abc.abstractmethod
    def _search_sql(self, search: SearchFilter) -> tuple[TextClause, dict[str, Any]]:
        """The search statement and its parameters."""


def _filters(
    search: SearchFilter, column: str, id_column: str, params: dict[str, Any]
) -> list[str]:
    """WHERE conditions shared by both engines (``column`` prefixes the filter columns)."""
    # A deleted message may still be indexed until the indexer reaches its delete entry.
    where = [f"{column}.conversation_id IN :cids", "m.deleted_at IS NULL"]
    params["cids"] = list(search.conversation_ids)
    if search.sender_id is not None:
        where.append(f"{column}.sender_id = :sender")
        params["sender"] = search.sender_id
    if search.after is not None:
        where.append(f"{column}.created_at >= :after")
        params["after"] = search.after
    if search.before is not None:
        where.append(f"{column}.created_at < :before")
        params["before"] = search.before
    if search.before_id is not None:
        where.append(f"{id_column} < :before_id")
        params["before_id"] = search.before_id
    return where


class SqliteSearch(SearchStore):
    """FTS5 with the trigram tokenizer: every term is a quoted phrase (a substring)."""

    async def _index_docs(self, conn: AsyncConnection, docs: Sequence[SearchDoc]) -> None:
        await conn.execute(
            text("INSERT OR REPLACE INTO message_search (rowid, body) VALUES (:id, :body)"),
            [{"id": d.message_id, "body": d.body} for d in docs],
        )

    async def _unindex(self, conn: AsyncConnection, message_ids: Sequence[int]) -> None:
        await conn.execute(
            text("DELETE FROM message_search WHERE rowid = :id"),
            [{"id": i} for i in message_ids],
        )

    def _search_sql(self, search: SearchFilter) -> tuple[TextClause, dict[str, Any]]:
        params: dict[str, Any] = {
            "match": " AND ".join('"' + t.replace('"', '""') + '"' for t in search.query.terms),
            "limit": search.limit,
        }
        where = ["message_search MATCH :match"]
        where += _filters(search, "m", "message_search.rowid", params)
        for i, term in enumerate(search.query.short_terms):
            where.append(f"instr(message_search.body, :short{i}) > 0")
            params[f"short{i}"] = term
        sql = (
            f"SELECT {_COLUMNS} FROM message_search "  # noqa: S608 (no input in the text)
            "JOIN messages AS m ON m.id = message_search.rowid "
            f"WHERE {' AND '.join(where)} "
            "ORDER BY message_search.rowid DESC LIMIT :limit"
        )
        return text(sql).bindparams(bindparam("cids", expanding=True)), params


class PostgresSearch(SearchStore):
    """pg_trgm: every term is ``body LIKE '%term%'``, answered by the trigram index."""

    async def _index_docs(self, conn: AsyncConnection, docs: Sequence[SearchDoc]) -> None:
        await conn.execute(
            text(
                "INSERT INTO message_search "
                "(message_id, conversation_id, sender_id, created_at, body) "
                "VALUES (:id, :cid, :sender, :at, :body) "
                "ON CONFLICT (message_id) DO UPDATE SET body = excluded.body "
                "WHERE message_search.body IS DISTINCT FROM excluded.body"
            ),
            [
                {
                    "id": d.message_id,
                    "cid": d.conversation_id,
                    "sender": d.sender_id,
                    "at": d.created_at,
                    "body": d.body,
                }
                for d in docs
            ],
        )

    async def _unindex(self, conn: AsyncConnection, message_ids: Sequence[int]) -> None:
        await conn.execute(
            text("DELETE FROM message_search WHERE message_id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"ids": list(message_ids)},
        )

    def _search_sql(self, search: SearchFilter) -> tuple[TextClause, dict[str, Any]]:
        params: dict[str, Any] = {"limit": search.limit}
        where = _filters(search, "s", "s.message_id", params)
        for i, term in enumerate(search.query.terms):
            where.append(f"s.body LIKE :term{i}")
            params[f"term{i}"] = _like(term)
        for i, term in enumerate(search.query.short_terms):
            where.append(f"strpos(s.body, :short{i}) > 0")
            params[f"short{i}"] = term
        sql = (
            f"SELECT {_COLUMNS} FROM message_search AS s "  # noqa: S608 (no input in the text)
            "JOIN messages AS m ON m.id = s.message_id "
            f"WHERE {' AND '.join(where)} "
            "ORDER BY s.message_id DESC LIMIT :limit"
        )
        return text(sql).bindparams(bindparam("cids", expanding=True)), params
