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
import dataclasses
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
#: Longest normalised text (bytes) ``ix_message_search_recent`` holds: a btree entry
#: must fit a third of a page.
SHORT_BODY = 2000

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

        async def txn(conn: AsyncConnection) -> list[Message]:
            return await self._search(conn, search)

        return await self._txn("search_messages", txn, write=False)

    async def _search(self, conn: AsyncConnection, search: SearchFilter) -> list[Message]:
        stmt, params = self._search_sql(search)
        return [message_from_columns(row) for row in await conn.execute(stmt, params)]

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
    search: SearchFilter,
    column: str,
    id_column: str,
    params: dict[str, Any],
    *,
    live: bool = True,
) -> list[str]:
    """WHERE conditions shared by both engines (``column`` prefixes the filter columns;
    ``live`` adds the check that ``m``, the message, is not deleted)."""
    where = [f"{column}.conversation_id IN :cids"]
    if live:
        # A deleted message may still be indexed until the indexer reaches its delete.
        where.append("m.deleted_at IS NULL")
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

    #: How many of one conversation's newest messages a search in that conversation
    #: reads directly (by its ``(conversation_id, seq)`` index) before it turns to the
    #: FTS index. The FTS index can only give matches newest first from every
    #: conversation at once, so a common word in one of many conversations would walk
    #: thousands of other conversations' matches; the conversation's own messages find it
    #: at once, and hold all of a small conversation.
    room_window = 2000

    async def _search(self, conn: AsyncConnection, search: SearchFilter) -> list[Message]:
        if len(search.conversation_ids) != 1:
            return await super()._search(conn, search)
        params: dict[str, Any] = {
            "cid": search.conversation_ids[0],
            "window": self.room_window,
            "limit": search.limit,
        }
        # Within a conversation seq follows id: one writer numbers both in one transaction.
        recent = "SELECT id FROM messages WHERE conversation_id = :cid"
        if search.before_id is not None:
            recent += " AND id < :before_id"
            params["before_id"] = search.before_id
        recent += " ORDER BY seq DESC LIMIT :window"
        where = _filters(search, "m", "m.id", params)
        for i, term in enumerate(search.query.all_terms):
            where.append(f"instr(s.body, :term{i}) > 0")
            params[f"term{i}"] = term
        # Joining the FTS table by rowid keeps only indexed messages, as a MATCH does.
        found_sql = (
            f"WITH recent AS ({recent}) SELECT {_COLUMNS} FROM recent "  # noqa: S608
            "JOIN messages AS m ON m.id = recent.id "
            "JOIN message_search AS s ON s.rowid = recent.id "
            f"WHERE {' AND '.join(where)} ORDER BY m.id DESC LIMIT :limit"
        )
        stmt = text(found_sql).bindparams(bindparam("cids", expanding=True))
        found = [message_from_columns(row) for row in await conn.execute(stmt, params)]
        if len(found) >= search.limit:
            return found
        window = {k: params[k] for k in ("cid", "window", "before_id") if k in params}
        read, oldest = (
            await conn.execute(text(f"SELECT count(*), min(id) FROM ({recent})"), window)  # noqa: S608
        ).one()
        if read < self.room_window:
            return found  # the whole conversation was read
        # Only older messages are left: the index finds them, however rare the words.
        older = dataclasses.replace(search, before_id=oldest, limit=search.limit - len(found))
        return found + await super()._search(conn, older)

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

    #: Index rows a search reads first, newest first, across the conversations it covers
    #: (at least :attr:`min_per_conversation` from each): index-only scans of
    #: ``ix_message_search_recent``, which holds the text. A common word is found there
    #: at once; the trigram index answers for what those rows do not settle.
    window = 4000
    min_per_conversation = 25

    async def _search(self, conn: AsyncConnection, search: SearchFilter) -> list[Message]:
        found, edge = await self._search_recent(conn, search)
        if len(found) >= search.limit or edge == 0:
            return found
        older = dataclasses.replace(search, before_id=edge, limit=search.limit - len(found))
        return found + await super()._search(conn, older)

    async def _search_recent(
        self, conn: AsyncConnection, search: SearchFilter
    ) -> tuple[list[Message], int]:
        """The matches among each conversation's newest index rows, and the edge: the
        id from which on every row of every conversation was read (0: all of them)."""
        per = max(self.min_per_conversation, self.window // len(search.conversation_ids))
        params: dict[str, Any] = {
            "cids": list(search.conversation_ids),
            "per": per,
            "limit": search.limit,
        }
        inner = ["s.conversation_id = c.id"]
        if search.sender_id is not None:
            inner.append("s.sender_id = :sender")
            params["sender"] = search.sender_id
        if search.after is not None:
            inner.append("s.created_at >= :after")
            params["after"] = search.after
        if search.before is not None:
            inner.append("s.created_at < :before")
            params["before"] = search.before
        if search.before_id is not None:
            inner.append("s.message_id < :before_id")
            params["before_id"] = search.before_id
        conditions = " AND ".join(inner)
        terms = []
        for i, term in enumerate(search.query.all_terms):
            terms.append(f"strpos(win.body, :term{i}) > 0")
            params[f"term{i}"] = term
        # Short texts come from the covering index without a heap access; the few long
        # ones (too big for a btree entry) from their own small index.
        branch = (
            "(SELECT s.message_id, s.body FROM message_search AS s "  # noqa: S608
            f"WHERE {conditions} AND octet_length(s.body) {{}} {SHORT_BODY} "
            "ORDER BY s.message_id DESC LIMIT :per)"
        )
        sql = (
            "WITH win AS MATERIALIZED ("  # noqa: S608 (no input in the text)
            " SELECT w.message_id, w.body, c.id AS cid"
            " FROM unnest(CAST(:cids AS BIGINT[])) AS c(id) CROSS JOIN LATERAL ("
            f"  SELECT u.message_id, u.body FROM ({branch.format('<=')} UNION ALL"
            f"  {branch.format('>')}) AS u ORDER BY u.message_id DESC LIMIT :per) AS w"
            "), edge AS ("
            " SELECT coalesce(max(low), 0) AS id FROM (SELECT min(message_id) AS low"
            " FROM win GROUP BY cid HAVING count(*) = :per) AS full_windows"
            f") SELECT edge.id, {_COLUMNS} FROM edge LEFT JOIN LATERAL ("
            f" SELECT {MESSAGE_COLUMNS} FROM (SELECT win.message_id FROM win"
            f"  WHERE win.message_id >= edge.id AND {' AND '.join(terms)}"
            "  ORDER BY win.message_id DESC) AS f"
            " CROSS JOIN LATERAL (SELECT * FROM messages"
            "  WHERE messages.id = f.message_id AND messages.deleted_at IS NULL) AS hit"
            " ORDER BY f.message_id DESC LIMIT :limit"
            ") AS m ON true ORDER BY m.id DESC"
        )
        rows = (await conn.execute(text(sql), params)).all()
        edge = int(rows[0][0]) if rows else 0
        return [message_from_columns(row, 1) for row in rows if row[1] is not None], edge

    def _search_sql(self, search: SearchFilter) -> tuple[TextClause, dict[str, Any]]:
        params: dict[str, Any] = {"limit": search.limit}
        where = _filters(search, "s", "s.message_id", params, live=False)
        for i, term in enumerate(search.query.terms):
            where.append(f"s.body LIKE :term{i}")
            params[f"term{i}"] = _like(term)
        for i, term in enumerate(search.query.short_terms):
            where.append(f"strpos(s.body, :short{i}) > 0")
            params[f"short{i}"] = term
        # Reached when the newest rows held too few matches: the words are rare, so
        # the matches are gathered whole (trigram index AND conversation index, in
        # bitmaps) before ordering; a LIMIT there would tempt the planner into walking
        # the primary key backwards through every conversation.
        sql = (
            "WITH hit AS MATERIALIZED ("  # noqa: S608 (no input in the text)
            " SELECT s.message_id FROM message_search AS s"
            f" WHERE {' AND '.join(where)}"
            f") SELECT {_COLUMNS} FROM hit JOIN messages AS m ON m.id = hit.message_id"
            " WHERE m.deleted_at IS NULL ORDER BY m.id DESC LIMIT :limit"
        )
        return text(sql).bindparams(bindparam("cids", expanding=True)), params
