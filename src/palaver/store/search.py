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
import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import TextClause

from palaver.core.models import Message, MessageKind, now_ms
from palaver.core.search import (
    GramCounts,
    IndexProgress,
    SearchFilter,
    advance_watermark,
    normalize,
)
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
#: Matches a search asks for beyond a page: the index may still hold a few messages
#: deleted since, which the search then skips.
SPARE = 4
#: Indexed texts (the newest) whose trigrams tell common from rare ones.
GRAM_SAMPLE = 5000

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


class PendingEntry(NamedTuple):
    """A stream entry past the watermark, as an indexer pass reads it."""

    id: int
    conversation_id: int
    sender_id: int | None
    kind: str
    content: str
    created_at: int
    ref_id: int | None
    deleted_at: int | None


class Original(NamedTuple):
    """A message an ``edit`` entry re-indexes: still text, not deleted."""

    id: int
    conversation_id: int
    sender_id: int | None
    created_at: int


@dataclass(frozen=True, slots=True)
class IndexPlan:
    """What one pass writes: documents to (re)index, messages to remove, and the
    watermark to move to."""

    docs: list[SearchDoc]
    gone: list[int]
    moved: int


def edit_targets(rows: Sequence[PendingEntry]) -> list[int]:
    """The messages ``edit`` entries among ``rows`` rewrite (their originals are read
    for :func:`plan_index`)."""
    return sorted({r.ref_id for r in rows if r.kind == _EDIT and r.ref_id is not None})


def plan_index(
    start: int, rows: Sequence[PendingEntry], edited: dict[int, Original], now: int
) -> IndexPlan:
    """The pass over ``rows`` (entries after watermark ``start``, in id order). Text
    messages are indexed, ``edit`` entries re-index the message they edit, ``delete``
    entries remove it."""
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
    moved = advance_watermark(start, [(r.id, r.created_at) for r in rows], now, GAP_GRACE_MS)
    return IndexPlan(list(docs.values()), sorted(gone), moved)


#: Trigrams of one long term (a URL, an identifier) the trigram index is asked for.
SAMPLE_GRAMS = 4


def sample_grams(term: str) -> list[str] | None:
    """A few alphanumeric trigrams spread over ``term`` for the index to intersect, or
    None when the term is short enough to look up whole.

    The index reads one posting list per trigram, and a long term has many, some as
    common as ``com`` or ``git``: looking up every trigram of a 17-character
    identifier costs ten times what four spread over it do, for nearly the same
    candidates (the exact substring test then runs on those)."""
    starts = [i for i in range(len(term) - 2) if term[i : i + 3].isalnum()]
    if len(term) - 2 <= SAMPLE_GRAMS or len(starts) < 2:
        return None
    if len(starts) <= SAMPLE_GRAMS:
        return [term[i : i + 3] for i in starts]
    last = len(starts) - 1
    picked = sorted({starts[round(k * last / (SAMPLE_GRAMS - 1))] for k in range(SAMPLE_GRAMS)})
    return [term[i : i + 3] for i in picked]


def _phrase(term: str) -> str:
    """An FTS5 string: the term as one phrase, quotes doubled."""
    return '"' + term.replace('"', '""') + '"'


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class SearchStore(SqlStore):
    """The search methods shared by both engines; subclasses write the SQL."""

    #: Trigram statistics of the newest indexed texts (None until first sampled).
    _grams: GramCounts | None = None

    @property
    def gram_counts(self) -> GramCounts | None:
        return self._grams

    async def refresh_search_stats(self) -> None:
        async def txn(conn: AsyncConnection) -> list[str]:
            rows = await conn.execute(text(self._sample_sql), {"n": GRAM_SAMPLE})
            return [row[0] for row in rows]

        texts = await self._txn("search_stats", txn, write=False)
        # Counting takes tens of milliseconds: not on the event loop.
        self._grams = await asyncio.to_thread(GramCounts, texts)

    #: The newest ``:n`` indexed texts.
    _sample_sql: str

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
        """Index up to ``batch`` entries after the watermark and move it (see
        :func:`plan_index`). Safe to run on several nodes at once."""
        # Read and normalise outside the write transaction, which should only write
        # (the SQLite file store runs the whole pass on its append thread instead).
        start, rows, edited = await self._txn(
            "index_read", lambda conn: self._pending(conn, batch), write=False
        )
        plan = plan_index(start, rows, edited, now if now is not None else now_ms())

        async def txn(conn: AsyncConnection) -> IndexProgress:
            watermark = await self._lock_watermark(conn)
            if watermark != start:
                # Another node indexed these meanwhile: read again from where it got.
                return IndexProgress(0, start, watermark)
            if plan.docs:
                await self._index_docs(conn, plan.docs)
            if plan.gone:
                await self._unindex(conn, plan.gone)
            if plan.moved != watermark:
                await conn.execute(
                    update(search_state)
                    .where(search_state.c.name == WATERMARK)
                    .values(last_id=plan.moved)
                )
            return IndexProgress(len(plan.docs), watermark, plan.moved)

        return await self._txn("index_messages", txn)

    async def _pending(
        self, conn: AsyncConnection, batch: int
    ) -> tuple[int, list[PendingEntry], dict[int, Original]]:
        """The watermark, the next ``batch`` entries after it and the messages they
        edit."""
        stmt = select(search_state.c.last_id).where(search_state.c.name == WATERMARK)
        watermark = int((await conn.execute(stmt)).scalar() or 0)
        rows = [
            PendingEntry._make(row)
            for row in await conn.execute(
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
        ]
        edited = await self._originals(conn, edit_targets(rows))
        return watermark, rows, edited

    async def _originals(self, conn: AsyncConnection, ids: list[int]) -> dict[int, Original]:
        """The edited messages that are still searchable (text, not deleted)."""
        if not ids:
            return {}
        stmt = select(
            messages.c.id, messages.c.conversation_id, messages.c.sender_id, messages.c.created_at
        ).where(
            messages.c.id.in_(ids),
            messages.c.kind == _TEXT,
            messages.c.deleted_at.is_(None),
        )
        return {row.id: Original._make(row) for row in await conn.execute(stmt)}

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
    """FTS5 with the trigram tokenizer: every term is a quoted phrase (a substring), or
    for a long term its rarest trigrams and a substring test."""

    _sample_sql = "SELECT body FROM message_search ORDER BY rowid DESC LIMIT :n"

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
        window: dict[str, Any] = {
            k: params[k] for k in ("cid", "window", "before_id") if k in params
        }
        read, oldest = (
            await conn.execute(text(f"SELECT count(*), min(id) FROM ({recent})"), window)  # noqa: S608
        ).one()
        if read < self.room_window:
            return found  # the whole conversation was read
        # Only older messages are left: the index finds them, however rare the words.
        older = dataclasses.replace(search, before_id=oldest, limit=search.limit - len(found))
        return found + await super()._search(conn, older)

    def _search_sql(self, search: SearchFilter) -> tuple[TextClause, dict[str, Any]]:
        params: dict[str, Any] = {"limit": search.limit}
        phrases: list[str] = []
        exact: list[str] = []
        for i, term in enumerate(search.query.terms):
            grams = self._grams.rarest(term) if self._grams is not None else None
            phrases += [_phrase(g) for g in grams] if grams else [_phrase(term)]
            if grams:
                exact.append(f"instr(message_search.body, :term{i}) > 0")
                params[f"term{i}"] = term
        params["match"] = " AND ".join(phrases)
        where = ["message_search MATCH :match", *exact]
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
    """pg_trgm: every term is ``body LIKE '%term%'``, answered by the trigram index (or
    for a long term, its rarest trigrams and a substring test)."""

    _sample_sql = "SELECT body FROM message_search ORDER BY message_id DESC LIMIT :n"

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

    #: Index rows a search reads per pass, newest first, across the conversations it
    #: covers (at least :attr:`min_per_conversation` from each): index-only scans of
    #: ``ix_message_search_recent``, which holds the text, so a row costs no heap page
    #: (a conversation's rows are spread over the whole table). The small first pass
    #: finds a common word at once; the second reads whole conversations of ordinary
    #: size, which beats any index for words that are not common; the trigram index
    #: answers for what is left (very large conversations).
    windows: tuple[int, ...] = (4000, 40_000)
    min_per_conversation = 25

    async def _search(self, conn: AsyncConnection, search: SearchFilter) -> list[Message]:
        found: list[Message] = []
        for window in self.windows:
            per = max(self.min_per_conversation, window // len(search.conversation_ids))
            more, edge = await self._search_recent(conn, search, per)
            found += more
            if len(more) >= search.limit or edge == 0:
                return found
            # Everything from the edge on was read: the next pass starts below it.
            search = dataclasses.replace(search, before_id=edge, limit=search.limit - len(more))
        return found + await super()._search(conn, search)

    async def _search_recent(
        self, conn: AsyncConnection, search: SearchFilter, per: int
    ) -> tuple[list[Message], int]:
        """The matches among the newest ``per`` index rows of each conversation, and the
        edge: the id from which on every row of every conversation was read (0: all)."""
        params: dict[str, Any] = {
            "cids": list(search.conversation_ids),
            "per": per,
            # A few spare matches: a deleted message still indexed is one of them.
            "cap": search.limit + SPARE,
        }
        inner = ["s.conversation_id = c.id"]
        if search.before_id is not None:
            inner.append("s.message_id < :before_id")
            params["before_id"] = search.before_id
        conditions = " AND ".join(inner)
        # Sender and dates are tested with the words, on the rows read, not while
        # reading: a window is a conversation's newest rows whatever they hold, so its
        # cost stays bounded when few rows pass (a date range long ago).
        tests = []
        if search.sender_id is not None:
            tests.append("v.sender_id = :sender")
            params["sender"] = search.sender_id
        if search.after is not None:
            tests.append("v.created_at >= :after")
            params["after"] = search.after
        if search.before is not None:
            tests.append("v.created_at < :before")
            params["before"] = search.before
        for i, term in enumerate(search.query.all_terms):
            tests.append(f"strpos(v.body, :term{i}) > 0")
            params[f"term{i}"] = term
        columns = "s.message_id, s.sender_id, s.created_at, s.body"
        # Short texts come from the covering index; the few long ones (too big for a
        # btree entry) from their own small index.
        branch = (
            f"(SELECT {columns} FROM message_search AS s "  # noqa: S608
            f"WHERE {conditions} AND octet_length(s.body) {{}} {SHORT_BODY} "
            "ORDER BY s.message_id DESC LIMIT :per)"
        )
        # One row per conversation (rows read, oldest id read, newest matches): the
        # texts never leave the database.
        sql = (
            "SELECT w.n, w.low, w.hits FROM unnest(CAST(:cids AS BIGINT[])) AS c(id)"  # noqa: S608
            " CROSS JOIN LATERAL (SELECT count(*) AS n, min(v.message_id) AS low,"
            "  (array_agg(v.message_id ORDER BY v.message_id DESC)"
            f"   FILTER (WHERE {' AND '.join(tests)}))[1:CAST(:cap AS INTEGER)] AS hits"
            "  FROM (SELECT u.* FROM"
            f"   ({branch.format('<=')} UNION ALL {branch.format('>')}) AS u"
            "   ORDER BY u.message_id DESC LIMIT :per) AS v) AS w"
        )
        rows = (await conn.execute(text(sql), params)).all()
        # Where each conversation's reading stops: its oldest row read, or its last
        # match returned when more may follow (deleted ones may take some places).
        edge = 0
        for n, low, hits in rows:
            if n == per:
                edge = max(edge, low)
            if hits and len(hits) == params["cap"]:
                edge = max(edge, hits[-1])
        candidates = sorted((h for *_, hits in rows for h in hits or () if h >= edge), reverse=True)
        return await self._live_messages(conn, candidates, search.limit), edge

    async def _live_messages(
        self, conn: AsyncConnection, ids: list[int], limit: int
    ) -> list[Message]:
        """The first ``limit`` of these messages (ids newest first) not deleted since
        they were indexed."""
        stmt = text(
            f"SELECT {MESSAGE_COLUMNS} FROM messages "  # noqa: S608 (no input in the text)
            "WHERE id = ANY(CAST(:ids AS BIGINT[])) AND deleted_at IS NULL ORDER BY id DESC"
        )
        found: list[Message] = []
        while ids and len(found) < limit:
            take = limit - len(found) + SPARE
            chunk, ids = ids[:take], ids[take:]
            rows = await conn.execute(stmt, {"ids": chunk})
            found += [message_from_columns(row) for row in rows]
        return found[:limit]

    def _search_sql(self, search: SearchFilter) -> tuple[TextClause, dict[str, Any]]:
        params: dict[str, Any] = {"limit": search.limit}
        where = _filters(search, "s", "s.message_id", params, live=False)
        for i, term in enumerate(search.query.terms):
            if self._grams is not None:
                grams = self._grams.rarest(term, alnum=True)
            else:
                grams = sample_grams(term)
            if grams is None:
                where.append(f"s.body LIKE :term{i}")
                params[f"term{i}"] = _like(term)
                continue
            # The index intersects a few trigrams; the exact test runs on what remains.
            for j, gram in enumerate(grams):
                where.append(f"s.body LIKE :gram{i}_{j}")
                params[f"gram{i}_{j}"] = _like(gram)
            where.append(f"strpos(s.body, :term{i}) > 0")
            params[f"term{i}"] = term
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
