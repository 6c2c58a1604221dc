"""Uploads: receive a file, decide what it is, make it safe, store it, authorize reads.

Any code path that accepts files calls :meth:`UploadService.store`; the HTTP route
streams its multipart body into :meth:`UploadService.scratch_file` and hands it to
:meth:`UploadService.store_spooled`, so no body is ever held in memory or written past
the size limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path
from typing import BinaryIO

import structlog

from palaver.broker.base import Broker
from palaver.config import Settings
from palaver.core.errors import ErrorCode, PalaverError, not_found
from palaver.core.models import now_ms
from palaver.core.uploads import (
    MAX_ATTACHMENTS,
    SNIFF_BYTES,
    Upload,
    is_image,
    safe_filename,
    sniff,
)
from palaver.services import imaging
from palaver.services.quotas import Quota, Quotas
from palaver.services.storage import BlobStorage, new_key
from palaver.store.base import Store
from palaver.store.sql import SqlStore
from palaver.store.uploads import UploadStore

log = structlog.get_logger(__name__)

# Uploads per user: a burst of 20, then one every 3 seconds, across every node.
UPLOAD_QUOTA = Quota("upload", 20, 1 / 3, "too many uploads; slow down")
# Images decoded at once per process: a 40-megapixel image takes 160 MB decoded and a
# re-encode at most twice that (imaging keeps one full-size copy at a time), so this
# bounds the memory that image uploads can take together (about 640 MB at the limit).
DECODE_SLOTS = 2
# Expired uploads deleted per transaction.
ORPHAN_BATCH = 500
# An upload this close to its expiry can no longer be attached: only the commit of its
# message marks it attached, so the expiry job could otherwise delete it between the
# checks of a send and that commit. Far longer than a send takes, and than the clocks
# of two nodes differ.
ATTACH_MARGIN_MS = 5 * 60_000

Source = bytes | Path | AsyncIterable[bytes]


class UploadService:
    """Stores uploads and answers who may read them."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: Broker,
        storage: BlobStorage,
        quotas: Quotas | None = None,
    ) -> None:
        if not isinstance(store, SqlStore):
            raise TypeError("uploads need a SQL store")
        self.settings = settings
        self.db = store
        self.records = UploadStore(store)
        self.broker = broker
        self.storage = storage
        self.quotas = quotas if quotas is not None else Quotas(broker)
        self._decoding = asyncio.Semaphore(DECODE_SLOTS)

    # -- receiving -------------------------------------------------------------------

    def scratch_file(self) -> tuple[BinaryIO, Path]:
        """A new private file in the storage's scratch directory, open for writing."""
        fd, name = tempfile.mkstemp(prefix="in-", dir=self.storage.scratch_dir())
        return os.fdopen(fd, "wb"), Path(name)

    def too_large(self) -> PalaverError:
        limit = self.settings.upload_max_bytes
        return PalaverError(
            ErrorCode.FILE_TOO_LARGE,
            f"the file is larger than {limit} bytes",
            field="file",
            details={"max_bytes": limit},
        )

    async def _spool(self, source: Source) -> Path:
        """Write ``source`` to a scratch file, refusing it past ``upload_max_bytes``
        without reading further."""
        if isinstance(source, Path):
            if (await asyncio.to_thread(source.stat)).st_size > self.settings.upload_max_bytes:
                raise self.too_large()
            handle, path = self.scratch_file()
            handle.close()
            await asyncio.to_thread(_copy, source, path)
            return path
        handle, path = self.scratch_file()
        try:
            written = 0
            if isinstance(source, bytes):
                if len(source) > self.settings.upload_max_bytes:
                    raise self.too_large()
                await asyncio.to_thread(handle.write, source)
            else:
                async for chunk in source:
                    written += len(chunk)
                    if written > self.settings.upload_max_bytes:
                        raise self.too_large()
                    await asyncio.to_thread(handle.write, chunk)
        except BaseException:
            handle.close()
            path.unlink(missing_ok=True)
            raise
        handle.close()
        return path

    async def store(
        self,
        user_id: int,
        filename: str | None,
        declared_type: str | None,
        source: Source,
        *,
        conversation_id: int | None = None,
    ) -> Upload:
        """Store a file for ``user_id`` and return its record.

        ``source`` is the content: bytes, a local file (copied, left in place) or an
        async iterable of chunks. ``declared_type`` (what the client claimed) is only
        logged: the type comes from the bytes. With ``conversation_id`` the file is bound
        at once to that conversation, whose member the user must be.

        Raises ``FILE_TOO_LARGE``, ``IMAGE_TOO_LARGE``, ``UNSUPPORTED_FILE_TYPE``,
        ``INVALID_IMAGE``, ``VALIDATION_ERROR`` (empty file), ``RATE_LIMITED`` or
        ``NOT_FOUND`` (the conversation).
        """
        await self.check_rate(user_id)
        if conversation_id is not None:
            await self._require_member(conversation_id, user_id)
        path = await self._spool(source)
        return await self.store_spooled(
            user_id,
            filename,
            declared_type,
            path,
            conversation_id=conversation_id,
            check_rate=False,
            check_member=False,
        )

    async def store_spooled(
        self,
        user_id: int,
        filename: str | None,
        declared_type: str | None,
        path: Path,
        *,
        conversation_id: int | None = None,
        check_rate: bool = True,
        check_member: bool = True,
    ) -> Upload:
        """Like :meth:`store` for a file already in :meth:`scratch_file` (and within the
        size limit), which this method consumes; a caller that already took the rate
        token or checked the membership says so."""
        made: list[Path] = [path]
        try:
            if check_rate:
                await self.check_rate(user_id)
            if check_member and conversation_id is not None:
                await self._require_member(conversation_id, user_id)
            size = (await asyncio.to_thread(path.stat)).st_size
            if size == 0:
                raise PalaverError(ErrorCode.VALIDATION_ERROR, "the file is empty", field="file")
            head = await asyncio.to_thread(_head, path)
            kind = sniff(head)
            thumb: Path | None = None
            width = height = None
            if kind is not None and is_image(kind):
                clean, thumb = path.with_suffix(".clean"), path.with_suffix(".thumb")
                made += [clean, thumb]
                async with self._decoding:
                    info = await asyncio.to_thread(
                        imaging.reencode,
                        path,
                        kind,
                        clean,
                        thumb,
                        max_pixels=self.settings.upload_max_pixels,
                        thumbnail_size=self.settings.upload_thumbnail_size,
                    )
                path, width, height = clean, info.width, info.height
                size = (await asyncio.to_thread(path.stat)).st_size
            elif kind is None or kind not in self.settings.upload_allowed_types:
                raise self._unsupported(kind)
            record = await self._keep(
                user_id,
                conversation_id,
                safe_filename(filename, kind),
                kind,
                size,
                path,
                thumb,
                (width, height),
            )
            log.info(
                "upload.stored",
                upload_id=record.id,
                user_id=user_id,
                kind=kind,
                size=size,
                declared_type=(declared_type or "")[:100],
            )
            return record
        finally:
            for leftover in made:
                leftover.unlink(missing_ok=True)

    def _unsupported(self, kind: str | None) -> PalaverError:
        if kind == "markup":
            message = "HTML, SVG and XML files are not accepted"
        else:
            allowed = ", ".join(["jpeg", "png", "gif", "webp", *self.settings.upload_allowed_types])
            message = f"this type of file is not accepted; accepted: {allowed}"
        return PalaverError(ErrorCode.UNSUPPORTED_FILE_TYPE, message, field="file")

    async def _keep(
        self,
        user_id: int,
        conversation_id: int | None,
        name: str,
        kind: str,
        size: int,
        path: Path,
        thumb: Path | None,
        dimensions: tuple[int | None, int | None],
    ) -> Upload:
        key = new_key()
        thumb_key = new_key() if thumb is not None else None
        await self.storage.put(key, path)
        try:
            if thumb is not None and thumb_key is not None:
                await self.storage.put(thumb_key, thumb)
            return await self.records.create(
                owner_id=user_id,
                conversation_id=conversation_id,
                name=name,
                kind=kind,
                size=size,
                storage_key=key,
                thumbnail_key=thumb_key,
                width=dimensions[0],
                height=dimensions[1],
                at=now_ms(),
            )
        except BaseException:
            # No record points at these blobs: remove them rather than leak disk.
            with contextlib.suppress(OSError):
                await self.storage.delete(key)
                if thumb_key is not None:
                    await self.storage.delete(thumb_key)
            raise

    async def check_rate(self, user_id: int) -> None:
        await self.quotas.take(UPLOAD_QUOTA, user_id)

    async def _require_member(self, conversation_id: int, user_id: int) -> None:
        if await self.db.get_member(conversation_id, user_id) is None:
            raise not_found()

    # -- reading ---------------------------------------------------------------------

    async def readable(self, user_id: int, upload_id: int) -> Upload:
        """The upload if ``user_id`` uploaded it or belongs to the conversation it is
        bound to; otherwise ``NOT_FOUND``, exactly as for an id that does not exist."""
        found = await self.records.get_readable(upload_id, user_id)
        if found is None:
            raise not_found("upload")
        return found

    def content(self, upload: Upload, *, thumbnail: bool = False) -> AsyncIterator[bytes]:
        """The bytes of the file (or of its thumbnail) in chunks."""
        key = upload.thumbnail_key if thumbnail else upload.storage_key
        if key is None:
            raise not_found("thumbnail")
        return self.storage.read(key)

    def content_range(self, upload: Upload, first: int, last: int) -> AsyncIterator[bytes]:
        """Bytes ``first`` to ``last`` (inclusive) of the file."""
        return self.storage.read_range(upload.storage_key, first, last - first + 1)

    # -- attaching -------------------------------------------------------------------

    async def attach(
        self, sender_id: int, conversation_id: int, upload_ids: Sequence[int]
    ) -> list[dict[str, object]]:
        """Bind the sender's uploads to the conversation a message goes to and return
        the message's ``attachments`` elements, in the order given (duplicates
        dropped). Someone else's upload, one bound to another conversation, or one
        within :data:`ATTACH_MARGIN_MS` of its expiry is ``NOT_FOUND``.

        The uploads count as attached (and stop expiring) only once the message is
        stored: :meth:`~palaver.store.base.Store.append_messages` marks them in the
        same transaction, so a send refused after this call leaves them to expire."""
        ids = list(dict.fromkeys(upload_ids))
        if len(ids) > MAX_ATTACHMENTS:
            raise PalaverError(
                ErrorCode.VALIDATION_ERROR,
                f"at most {MAX_ATTACHMENTS} attachments per message",
                field="attachments",
            )
        if not ids:
            return []
        found = await self.records.get_many(ids)
        expiring = self._expiry_cutoff(now_ms() + ATTACH_MARGIN_MS)
        for upload_id in ids:
            upload = found.get(upload_id)
            if (
                upload is None
                or upload.owner_id != sender_id
                or upload.conversation_id not in (None, conversation_id)
                or (upload.attached_at is None and upload.created_at < expiring)
            ):
                raise not_found("upload")
        if any(found[i].conversation_id is None for i in ids):
            bound = await self.records.bind(ids, sender_id, conversation_id)
            if bound < len(ids):
                # Expired (or its message deleted) between the read and the binding.
                raise not_found("upload")
        return [found[i].attachment() for i in ids]

    def _expiry_cutoff(self, now: int) -> int:
        """Unattached uploads made before this expire at ``now``: -1, before every
        upload, when ``upload_orphan_hours`` is 0 (nothing expires)."""
        hours = self.settings.upload_orphan_hours
        return now - hours * 3_600_000 if hours > 0 else -1

    # -- removing --------------------------------------------------------------------

    async def discard_blobs(self, keys: Sequence[str]) -> None:
        """Remove the blobs of records already deleted. A failure only leaks disk
        space (no record points at the blob, so nobody can read it) and is logged."""
        for key in keys:
            try:
                await self.storage.delete(key)
            except OSError as exc:
                log.warning("upload.blob_not_removed", error=str(exc))

    async def remove_owned(self, user_id: int) -> int:
        """Delete every file of a user (account deletion); return how many blobs went."""
        keys = await self.records.remove_owned(user_id)
        await self.discard_blobs(keys)
        if keys:
            log.info("upload.owner_removed", user_id=user_id, blobs=len(keys))
        return len(keys)

    async def remove_unattached(self, now: int | None = None) -> int:
        """Delete the files never attached to a message within ``upload_orphan_hours``
        of their upload; return how many blobs (files and thumbnails) went."""
        hours = self.settings.upload_orphan_hours
        if hours <= 0:
            return 0
        cutoff = self._expiry_cutoff(now if now is not None else now_ms())
        removed = 0
        while True:
            keys = await self.records.remove_unattached(cutoff, limit=ORPHAN_BATCH)
            await self.discard_blobs(keys)
            removed += len(keys)
            # A full batch yields at least ORPHAN_BATCH keys (one file each).
            if len(keys) < ORPHAN_BATCH:
                break
        if removed:
            log.info("upload.orphans_removed", blobs=removed, hours=hours)
        return removed


def _copy(source: Path, target: Path) -> None:
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(1 << 16):
            dst.write(chunk)


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(SNIFF_BYTES)
