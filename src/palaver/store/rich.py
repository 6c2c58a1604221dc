"""Edits, deletes, reactions, pins and threads in the store.

A mutation is one transaction: it locks the conversation row, takes the next sequence
number (as a send does, so sequences stay gapless), appends an entry of its own kind
that points at the target through ``ref_id``, and updates the target alongside.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace

from sqlalchemy import and_, case, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from palaver.core.models import Message, MessageKind, NewMessage
from palaver.store.rich_base import (
    LATEST_REPLIERS,
    Edit,
    Mutation,
    RichMessageStore,
    ThreadSummary,
)
from palaver.store.schema import (
    EDIT_ENTRIES,
    conversations,
    message_edits,
    messages,
    pins,
    reactions,
    thread_reads,
    uploads,
)
from palaver.store.sql import (
    SqlStore,
    _message,
    _message_values,
    chunks,
    decode_attachments,
    encode_mentions,
)


class RichSqlStore(SqlStore, RichMessageStore):
    """:class:`RichMessageStore` on SQLAlchemy Core, for both engines."""

    async def _append_entry(self, conn: AsyncConnection, entry: NewMessage, at: int) -> Message:
        # The same row lock as a send: writers of this conversation wait here, so the
        # number taken below is final. last_message_at stays: an entry is not a message.
        last_seq = await self._lock_conversations(conn, {entry.conversation_id})
        seq = last_seq[entry.conversation_id] + 1
        await conn.execute(
            update(conversations)
            .where(conversations.c.id == entry.conversation_id)
            .values(last_seq=seq)
        )
        values = _message_values(entry, seq, at)
        row_id = (
            await conn.execute(insert(messages).values(values).returning(messages.c.id))
        ).scalar_one()
        return _message({**values, "id": row_id, "edited_at": None, "deleted_at": None})

    async def _live_target(self, conn: AsyncConnection, message_id: int) -> Message | None:
        row = (await conn.execute(select(messages).where(messages.c.id == message_id))).first()
        if row is None:
            return None
        target = _message(row._mapping)
        if target.deleted_at is not None or target.kind.is_mutation:
            return None
        return target

    async def edit_message(
        self,
        message_id: int,
        editor_id: int,
        content: str,
        at: int,
        mentions: tuple[str, ...] = (),
    ) -> Mutation | None:
        async def txn(conn: AsyncConnection) -> Mutation | None:
            target = await self._live_target(conn, message_id)
            if target is None:
                return None
            entry = await self._append_entry(
                conn, _entry(target, editor_id, MessageKind.EDIT, content, mentions), at
            )
            # Re-read under the conversation lock: a delete that committed meanwhile wins.
            target = await self._live_target(conn, message_id)
            if target is None:
                raise _Retract()
            await conn.execute(
                insert(message_edits).values(
                    message_id=message_id,
                    editor_id=editor_id,
                    content=target.content,
                    edited_at=at,
                )
            )
            await conn.execute(
                update(messages)
                .where(messages.c.id == message_id)
                .values(content=content, edited_at=at, mentions=encode_mentions(mentions))
            )
            edited = replace(target, content=content, edited_at=at, mentions=mentions)
            return Mutation(entry, edited)

        return await self._mutate("edit_message", txn)

    async def delete_message(self, message_id: int, actor_id: int, at: int) -> Mutation | None:
        async def txn(conn: AsyncConnection) -> Mutation | None:
            target = await self._live_target(conn, message_id)
            if target is None:
                return None
            # Its uploads before the conversation: an append carrying one of them locks
            # both in that order, and the other order could deadlock with it.
            await _lock_uploads(conn, target)
            entry = await self._append_entry(conn, _entry(target, actor_id, MessageKind.DELETE), at)
            target = await self._live_target(conn, message_id)
            if target is None:
                raise _Retract()
            await conn.execute(
                update(messages)
                .where(messages.c.id == message_id)
                .values(content="", deleted_at=at, attachments=None, mentions=None)
            )
            await conn.execute(delete(reactions).where(reactions.c.message_id == message_id))
            await conn.execute(delete(pins).where(pins.c.message_id == message_id))
            await _forget_edits(conn, message_id)
            blobs = await _drop_attachments(conn, target)
            gone = replace(target, content="", deleted_at=at, attachments=(), mentions=())
            return Mutation(entry, gone, blobs)

        return await self._mutate("delete_message", txn)

    async def set_reaction(
        self, message_id: int, user_id: int, emoji: str, add: bool, at: int
    ) -> Mutation | None:
        async def txn(conn: AsyncConnection) -> Mutation | None:
            target = await self._live_target(conn, message_id)
            if target is None:
                return None
            kind = MessageKind.REACT if add else MessageKind.UNREACT
            # Lock first, then look: two toggles of the same reaction take turns, and
            # the second sees the first's result (adding twice is adding once).
            entry = await self._append_entry(conn, _entry(target, user_id, kind, emoji), at)
            if await self._live_target(conn, message_id) is None:
                raise _Retract()
            key = and_(
                reactions.c.message_id == message_id,
                reactions.c.user_id == user_id,
                reactions.c.emoji == emoji,
            )
            present = (await conn.execute(select(func.count()).where(key))).scalar_one() > 0
            if present == add:
                raise _Retract()
            if add:
                await conn.execute(
                    insert(reactions).values(
                        message_id=message_id, user_id=user_id, emoji=emoji, created_at=at
                    )
                )
            else:
                await conn.execute(delete(reactions).where(key))
            return Mutation(entry, target)

        return await self._mutate("set_reaction", txn)

    async def set_pin(
        self, message_id: int, user_id: int, pinned: bool, at: int
    ) -> Mutation | None:
        async def txn(conn: AsyncConnection) -> Mutation | None:
            target = await self._live_target(conn, message_id)
            if target is None:
                return None
            kind = MessageKind.PIN if pinned else MessageKind.UNPIN
            entry = await self._append_entry(conn, _entry(target, user_id, kind), at)
            if await self._live_target(conn, message_id) is None:
                raise _Retract()
            key = and_(
                pins.c.conversation_id == target.conversation_id,
                pins.c.message_id == message_id,
            )
            present = (await conn.execute(select(func.count()).where(key))).scalar_one() > 0
            if present == pinned:
                raise _Retract()
            if pinned:
                await conn.execute(
                    insert(pins).values(
                        conversation_id=target.conversation_id,
                        message_id=message_id,
                        pinned_by=user_id,
                        pinned_at=at,
                    )
                )
            else:
                await conn.execute(delete(pins).where(key))
            return Mutation(entry, target)

        return await self._mutate("set_pin", txn)

    async def _mutate(
        self, name: str, fn: Callable[[AsyncConnection], Awaitable[Mutation | None]]
    ) -> Mutation | None:
        try:
            return await self._txn(name, fn)
        except _Retract:
            # Rolled back: no entry, no sequence number taken.
            return None

    async def get_reactions(self, message_ids: Iterable[int]) -> dict[int, list[tuple[str, int]]]:
        ids = sorted(set(message_ids))
        found: dict[int, list[tuple[str, int]]] = {}
        for chunk in chunks(ids):
            stmt = (
                select(reactions.c.message_id, reactions.c.emoji, reactions.c.user_id)
                .where(reactions.c.message_id.in_(chunk))
                .order_by(reactions.c.created_at, reactions.c.user_id)
            )
            for row in await self._all("get_reactions", stmt, lambda m: tuple(m.values())):
                found.setdefault(row[0], []).append((row[1], row[2]))
        return found

    async def pinned_ids(self, conversation_id: int) -> list[int]:
        stmt = (
            select(pins.c.message_id)
            .where(pins.c.conversation_id == conversation_id)
            .order_by(pins.c.pinned_at.desc(), pins.c.message_id.desc())
        )
        return await self._scalars("pinned_ids", stmt)

    async def thread_summaries(self, root_ids: Iterable[int]) -> dict[int, ThreadSummary]:
        ids = sorted(set(root_ids))
        found: dict[int, ThreadSummary] = {}
        for chunk in chunks(ids):
            stmt = (
                select(
                    messages.c.thread_root_id,
                    func.count(),
                    func.max(messages.c.created_at),
                    func.max(messages.c.seq),
                )
                .where(messages.c.thread_root_id.in_(chunk), messages.c.kind == "text")
                .group_by(messages.c.thread_root_id)
            )
            counts = await self._all("thread_summaries", stmt, lambda m: tuple(m.values()))
            for root, count, last_at, last_seq in counts:
                found[root] = ThreadSummary(root, count, last_at, last_seq, ())
        for root, summary in found.items():
            # Bounded per root: the newest replies name the latest repliers.
            stmt2 = (
                select(messages.c.sender_id)
                .where(messages.c.thread_root_id == root, messages.c.kind == "text")
                .order_by(messages.c.seq.desc())
                .limit(50)
            )
            repliers: list[int] = []
            for sender in await self._scalars("thread_repliers", stmt2):
                if sender is not None and sender not in repliers:
                    repliers.append(sender)
            found[root] = replace(summary, repliers=tuple(repliers[:LATEST_REPLIERS]))
        return found

    async def thread_replies(
        self,
        root_id: int,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        stmt = select(messages).where(messages.c.thread_root_id == root_id).limit(limit)
        if before_seq is not None:
            stmt = stmt.where(messages.c.seq < before_seq)
        if after_seq is not None:
            stmt = stmt.where(messages.c.seq > after_seq)
        if after_seq is not None or before_seq is None:
            return await self._all("thread_replies", stmt.order_by(messages.c.seq), _message)
        # Paging back: the newest page before the cursor, handed back oldest first.
        newest_first = await self._all(
            "thread_replies", stmt.order_by(messages.c.seq.desc()), _message
        )
        return newest_first[::-1]

    async def thread_read_seq(self, user_id: int, root_id: int) -> int:
        stmt = select(thread_reads.c.read_seq).where(
            thread_reads.c.user_id == user_id, thread_reads.c.root_id == root_id
        )
        found = await self._scalars("thread_read_seq", stmt)
        return int(found[0]) if found else 0

    async def mark_thread_read(self, user_id: int, root_id: int, seq: int) -> int:
        async def txn(conn: AsyncConnection) -> int:
            key = and_(thread_reads.c.user_id == user_id, thread_reads.c.root_id == root_id)
            await conn.execute(
                self._insert_ignore(thread_reads, "user_id", "root_id").values(
                    user_id=user_id, root_id=root_id, read_seq=0
                )
            )
            # Forward only, as the conversation's read cursor.
            await conn.execute(
                update(thread_reads).where(key, thread_reads.c.read_seq < seq).values(read_seq=seq)
            )
            stmt = select(thread_reads.c.read_seq).where(key)
            return int((await conn.execute(stmt)).scalar_one())

        return await self._txn("mark_thread_read", txn)

    async def thread_unread(
        self, user_id: int, root_ids: Iterable[int]
    ) -> dict[int, tuple[int, int]]:
        ids = sorted(set(root_ids))
        found: dict[int, tuple[int, int]] = {}
        for chunk in chunks(ids):
            cursors = select(thread_reads.c.root_id, thread_reads.c.read_seq).where(
                thread_reads.c.user_id == user_id, thread_reads.c.root_id.in_(chunk)
            )
            read = dict(await self._all("thread_reads", cursors, lambda m: tuple(m.values())))
            read_seq = func.coalesce(
                select(thread_reads.c.read_seq)
                .where(
                    thread_reads.c.user_id == user_id,
                    thread_reads.c.root_id == messages.c.thread_root_id,
                )
                .scalar_subquery(),
                0,
            )
            # Every reply (one index range per root), counting those by others after
            # the cursor: a root with replies gets an entry even when all are read.
            unread = func.sum(
                case(
                    (
                        and_(
                            messages.c.seq > read_seq,
                            messages.c.deleted_at.is_(None),
                            messages.c.sender_id.is_distinct_from(user_id),
                        ),
                        1,
                    ),
                    else_=0,
                )
            )
            stmt = (
                select(messages.c.thread_root_id, unread)
                .where(messages.c.thread_root_id.in_(chunk), messages.c.kind == "text")
                .group_by(messages.c.thread_root_id)
            )
            for root, count in await self._all("thread_unread", stmt, lambda m: tuple(m.values())):
                found[root] = (int(read.get(root, 0)), int(count or 0))
        return found

    async def count_thread_unread(self, user_id: int, root_id: int, read_seq: int) -> int:
        stmt = select(func.count()).where(
            messages.c.thread_root_id == root_id,
            messages.c.seq > read_seq,
            messages.c.kind == "text",
            messages.c.deleted_at.is_(None),
            messages.c.sender_id.is_distinct_from(user_id),
        )
        return int((await self._scalars("count_thread_unread", stmt))[0])

    async def edit_history(self, message_id: int) -> list[Edit]:
        stmt = (
            select(message_edits)
            .where(message_edits.c.message_id == message_id)
            .order_by(message_edits.c.id)
        )
        return await self._all(
            "edit_history",
            stmt,
            lambda m: Edit(m["message_id"], m["editor_id"], m["content"], m["edited_at"]),
        )


class _Retract(Exception):
    """Roll the mutation back: it turned out to change nothing."""


def _entry(
    target: Message,
    actor_id: int,
    kind: MessageKind,
    content: str = "",
    mentions: tuple[str, ...] = (),
) -> NewMessage:
    return NewMessage(
        conversation_id=target.conversation_id,
        sender_id=actor_id,
        content=content,
        kind=kind,
        ref_id=target.id,
        mentions=mentions,
    )


async def _forget_edits(conn: AsyncConnection, message_id: int) -> None:
    """Empty every text a message being deleted had before. Its edit entries keep
    their place in the stream (cursors stay gapless) but lose their text and mentions.
    Its edit history goes too: it shows moderators what a live message used to say, a
    tombstone says nothing, and the owners and admins who read it are members like any
    other. The caller holds the conversation's lock, so an edit waiting for it finds
    the tombstone and appends nothing."""
    await conn.execute(
        update(messages)
        .where(messages.c.ref_id == message_id, text(EDIT_ENTRIES))
        .values(content="", mentions=None)
    )
    await conn.execute(delete(message_edits).where(message_edits.c.message_id == message_id))


def _upload_ids(target: Message) -> set[int]:
    return {a["id"] for a in target.attachments if isinstance(a.get("id"), int)}


async def _lock_uploads(conn: AsyncConnection, target: Message) -> None:
    if ids := _upload_ids(target):
        await conn.execute(
            select(uploads.c.id)
            .where(uploads.c.id.in_(sorted(ids)))
            .order_by(uploads.c.id)
            .with_for_update()
        )


async def _drop_attachments(conn: AsyncConnection, target: Message) -> tuple[str, ...]:
    """Delete the upload records of a deleted message's attachments, in its
    transaction: once the tombstone is committed no member can fetch the files."""
    ids = _upload_ids(target)
    if not ids:
        return ()
    # The sender may have attached the same file to another message of the
    # conversation: that message still carries it, so it stays.
    others = await conn.execute(
        select(messages.c.attachments).where(
            messages.c.conversation_id == target.conversation_id,
            messages.c.sender_id == target.sender_id,
            messages.c.id != target.id,
            messages.c.deleted_at.is_(None),
            messages.c.attachments.is_not(None),
        )
    )
    for (value,) in others:
        ids -= {a.get("id") for a in decode_attachments(value)}
    if not ids:
        return ()
    result = await conn.execute(
        delete(uploads)
        .where(uploads.c.id.in_(sorted(ids)), uploads.c.conversation_id == target.conversation_id)
        .returning(uploads.c.storage_key, uploads.c.thumbnail_key)
    )
    return tuple(key for row in result.all() for key in row if key is not None)
