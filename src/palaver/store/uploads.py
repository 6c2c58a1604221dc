"""Upload records and the reads of a user's data export, on both SQL engines.

A companion of :class:`~palaver.store.sql.SqlStore`: it runs its named transactions
through the store's own ``_txn``, so timing, error translation and engine routing are
the store's, while the messaging tables and the send path stay untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from palaver.core.models import Message, MessageKind
from palaver.core.uploads import Upload
from palaver.store.schema import conversations, members, messages, uploads
from palaver.store.sql import Row, SqlStore, _message, chunks


def _upload(m: Row) -> Upload:
    return Upload(
        id=m["id"],
        owner_id=m["owner_id"],
        conversation_id=m["conversation_id"],
        name=m["name"],
        kind=m["kind"],
        size=m["size"],
        storage_key=m["storage_key"],
        created_at=m["created_at"],
        width=m["width"],
        height=m["height"],
        thumbnail_key=m["thumbnail_key"],
        attached_at=m.get("attached_at"),
    )


def blob_keys(rows: Iterable[Any]) -> list[str]:
    """The storage keys of deleted rows (``storage_key``, ``thumbnail_key``)."""
    return [key for row in rows for key in (row[0], row[1]) if key is not None]


@dataclass(frozen=True, slots=True)
class ExportedMessage:
    """A message of the exporting user with the conversation it belongs to."""

    message: Message
    conversation_kind: str
    conversation_name: str | None


class UploadStore:
    """Upload metadata (the files themselves live in a storage backend)."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    async def create(
        self,
        *,
        owner_id: int,
        conversation_id: int | None,
        name: str,
        kind: str,
        size: int,
        storage_key: str,
        thumbnail_key: str | None,
        width: int | None,
        height: int | None,
        at: int,
    ) -> Upload:
        """Insert the record of a stored file and return it with its id."""
        values: dict[str, Any] = {
            "owner_id": owner_id,
            "conversation_id": conversation_id,
            "name": name,
            "kind": kind,
            "size": size,
            "storage_key": storage_key,
            "thumbnail_key": thumbnail_key,
            "width": width,
            "height": height,
            "created_at": at,
        }

        async def txn(conn: AsyncConnection) -> Upload:
            result = await conn.execute(insert(uploads).values(values).returning(uploads.c.id))
            return _upload({**values, "id": result.scalar_one()})

        return await self.store._txn("create_upload", txn)

    async def get(self, upload_id: int) -> Upload | None:
        """The upload with this id."""
        stmt = select(uploads).where(uploads.c.id == upload_id)
        return await self.store._one("get_upload", stmt, _upload)

    async def get_readable(self, upload_id: int, user_id: int) -> Upload | None:
        """The upload if ``user_id`` may read it (its owner, or a member of the
        conversation it is bound to), else ``None``: one query, so an outsider's
        refusal and a missing id cost the same."""
        stmt = (
            select(uploads)
            .outerjoin(
                members,
                and_(
                    members.c.conversation_id == uploads.c.conversation_id,
                    members.c.user_id == user_id,
                ),
            )
            .where(
                uploads.c.id == upload_id,
                or_(uploads.c.owner_id == user_id, members.c.user_id.is_not(None)),
            )
        )
        return await self.store._one("get_readable_upload", stmt, _upload)

    async def get_many(self, upload_ids: Iterable[int]) -> dict[int, Upload]:
        """The uploads with these ids that exist, keyed by id."""
        ids = sorted(set(upload_ids))

        async def txn(conn: AsyncConnection) -> dict[int, Upload]:
            found: dict[int, Upload] = {}
            for chunk in chunks(ids):
                for row in await conn.execute(select(uploads).where(uploads.c.id.in_(chunk))):
                    found[row.id] = _upload(row._mapping)
            return found

        return await self.store._txn("get_uploads", txn, write=False) if ids else {}

    async def bind(self, upload_ids: Sequence[int], owner_id: int, conversation_id: int) -> int:
        """Bind the owner's unbound uploads among ``upload_ids`` to a conversation a
        message is about to go to. Return how many are now bound to it: fewer than
        asked when one was removed meanwhile. ``attached_at`` is left alone: only the
        transaction that stores a message carrying an upload stamps it
        (:meth:`~palaver.store.base.Store.append_messages`), so a send refused after
        this leaves the upload to expire."""
        ids = list(upload_ids)

        async def txn(conn: AsyncConnection) -> int:
            await conn.execute(
                update(uploads)
                .where(
                    uploads.c.id.in_(ids),
                    uploads.c.owner_id == owner_id,
                    uploads.c.conversation_id.is_(None),
                )
                .values(conversation_id=conversation_id)
            )
            bound = await conn.execute(
                select(uploads.c.id).where(
                    uploads.c.id.in_(ids),
                    uploads.c.owner_id == owner_id,
                    uploads.c.conversation_id == conversation_id,
                )
            )
            return len(bound.all())

        return await self.store._txn("bind_uploads", txn)

    async def remove_owned(self, owner_id: int) -> list[str]:
        """Delete every upload record of a user; return the blob keys to remove."""

        async def txn(conn: AsyncConnection) -> list[str]:
            result = await conn.execute(
                delete(uploads)
                .where(uploads.c.owner_id == owner_id)
                .returning(uploads.c.storage_key, uploads.c.thumbnail_key)
            )
            return blob_keys(result.all())

        return await self.store._txn("remove_owned_uploads", txn)

    async def remove_unattached(self, created_before: int, *, limit: int = 500) -> list[str]:
        """Delete up to ``limit`` uploads never attached to a message and made before
        ``created_before``; return the blob keys to remove."""

        def expired() -> Any:
            return and_(uploads.c.attached_at.is_(None), uploads.c.created_at < created_before)

        async def txn(conn: AsyncConnection) -> list[str]:
            ids = (
                (await conn.execute(select(uploads.c.id).where(expired()).limit(limit)))
                .scalars()
                .all()
            )
            if not ids:
                return []
            # The condition again: a send may have attached one since it was read.
            result = await conn.execute(
                delete(uploads)
                .where(uploads.c.id.in_(list(ids)), expired())
                .returning(uploads.c.storage_key, uploads.c.thumbnail_key)
            )
            return blob_keys(result.all())

        return await self.store._txn("remove_unattached_uploads", txn)

    async def list_for_owner(
        self, owner_id: int, *, after_id: int = 0, limit: int = 100
    ) -> list[Upload]:
        """A user's uploads in id order, paged by ``after_id``."""
        stmt = (
            select(uploads)
            .where(uploads.c.owner_id == owner_id, uploads.c.id > after_id)
            .order_by(uploads.c.id)
            .limit(limit)
        )
        return await self.store._all("list_uploads", stmt, _upload)

    async def delete(self, upload_id: int) -> bool:
        """Remove an upload's record; ``False`` when there was none."""
        stmt = delete(uploads).where(uploads.c.id == upload_id)
        return await self.store._rowcount("delete_upload", stmt) > 0

    async def messages_by_sender(
        self, sender_id: int, *, after_id: int = 0, limit: int = 500
    ) -> list[ExportedMessage]:
        """The messages a user sent (texts and system notices, never the stream's
        edit, delete, reaction or pin entries), in id order, paged by ``after_id``, each
        with its conversation's kind and name. Rows hold the current text."""
        stmt = (
            select(
                messages, conversations.c.kind.label("c_kind"), conversations.c.name.label("c_name")
            )
            .join(conversations, conversations.c.id == messages.c.conversation_id)
            .where(
                messages.c.sender_id == sender_id,
                messages.c.id > after_id,
                messages.c.kind.in_((MessageKind.TEXT.value, MessageKind.SYSTEM.value)),
            )
            .order_by(messages.c.id)
            .limit(limit)
        )

        def convert(m: Row) -> ExportedMessage:
            return ExportedMessage(
                message=_message(m), conversation_kind=m["c_kind"], conversation_name=m["c_name"]
            )

        return await self.store._all("export_messages", stmt, convert)
