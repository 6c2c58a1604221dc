"""A user's own data as a zip archive: profile, messages and uploaded files.

The archive is written to a scratch file page by page (messages 500 at a time, files in
64 KB chunks), so an account with a million messages costs disk, not memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import IO, Any

import orjson

from palaver.broker.base import Broker
from palaver.core.models import User, now_ms
from palaver.services.audit import Audit
from palaver.services.quotas import Quota
from palaver.services.uploads import UploadService

# Two exports at once, then one per 15 minutes: an archive can be large to build, and a
# user rarely needs a fresh one more often.
EXPORT_QUOTA = Quota("export", 2, 1 / 900, "an export was made recently; try again later")
PAGE = 500

_JSON = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS


class ExportService:
    """Builds data exports (``GET /api/me/export``)."""

    def __init__(self, uploads: UploadService, broker: Broker, audit: Audit) -> None:
        self.uploads = uploads
        self.records = uploads.records
        self.store = uploads.db
        self.broker = broker
        self.audit = audit

    async def check_rate(self, user_id: int) -> None:
        await self.uploads.quotas.take(EXPORT_QUOTA, user_id)

    async def build(self, user: User, *, ip: str | None = None) -> Path:
        """Write the archive of ``user``'s data to a new scratch file and return its
        path (the caller deletes it). Rate-limited and audited as ``data.export``."""
        await self.check_rate(user.id)
        fd, name = tempfile.mkstemp(
            prefix="export-", suffix=".zip", dir=self.uploads.storage.scratch_dir()
        )
        os.close(fd)
        path = Path(name)
        try:
            counts = await self._write(user, path)
        except BaseException:
            await asyncio.to_thread(path.unlink, True)
            raise
        await self.audit.record(
            "data.export", actor_id=user.id, target=f"user:{user.id}", ip=ip, **counts
        )
        return path

    async def _write(self, user: User, path: Path) -> dict[str, int]:
        archive = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        try:
            profile = await self._profile(user)
            await asyncio.to_thread(archive.writestr, _entry("profile.json"), profile)
            messages = await self._messages(user.id, archive)
            files = await self._files(user.id, archive)
        finally:
            await asyncio.to_thread(archive.close)
        return {"messages": messages, "uploads": files}

    async def _profile(self, user: User) -> bytes:
        summaries = await self.store.list_user_conversations(user.id)
        profile: dict[str, Any] = {
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "display_name": user.display_name,
            "avatar_url": user.avatar_url,
            "is_admin": user.is_admin,
            "created_at": user.created_at,
            "last_seen_at": user.last_seen_at,
            "exported_at": now_ms(),
            "conversations": [
                {
                    "id": s.conversation.id,
                    "type": s.conversation.kind.value,
                    "name": s.conversation.name,
                    "role": s.member.role.value,
                    "joined_at": s.member.joined_at,
                }
                for s in summaries
            ],
        }
        return orjson.dumps(profile, option=_JSON)

    async def _messages(self, user_id: int, archive: zipfile.ZipFile) -> int:
        count = 0
        after = 0
        entry = _entry("messages.jsonl")
        out = await asyncio.to_thread(archive.open, entry, "w", force_zip64=True)
        try:
            while True:
                page = await self.records.messages_by_sender(user_id, after_id=after, limit=PAGE)
                if not page:
                    break
                lines = b"".join(orjson.dumps(_message_line(item)) + b"\n" for item in page)
                await asyncio.to_thread(out.write, lines)
                count += len(page)
                after = page[-1].message.id
        finally:
            await asyncio.to_thread(out.close)
        return count

    async def _files(self, user_id: int, archive: zipfile.ZipFile) -> int:
        index: list[dict[str, Any]] = []
        after = 0
        while True:
            page = await self.records.list_for_owner(user_id, after_id=after, limit=100)
            if not page:
                break
            for upload in page:
                # The id keeps names unique; the name was made safe when stored.
                member = f"uploads/{upload.id}-{upload.name}"
                entry = _entry(member, upload.created_at)
                out = await asyncio.to_thread(archive.open, entry, "w", force_zip64=True)
                try:
                    with contextlib.suppress(FileNotFoundError):
                        async for chunk in self.uploads.content(upload):
                            await asyncio.to_thread(_write, out, chunk)
                finally:
                    await asyncio.to_thread(out.close)
                index.append(
                    {
                        **upload.attachment(),
                        "conversation_id": upload.conversation_id,
                        "created_at": upload.created_at,
                        "file": member,
                    }
                )
            after = page[-1].id
        await asyncio.to_thread(
            archive.writestr, _entry("uploads.json"), orjson.dumps(index, option=_JSON)
        )
        return len(index)


def _entry(name: str, at_ms: int | None = None) -> zipfile.ZipInfo:
    """A compressed archive entry dated ``at_ms`` (default now; local time, as zip tools
    read it): entries opened by name alone carry the format's zero date, 1980-01-01."""
    seconds = time.time() if at_ms is None else at_ms / 1000
    # Zip dates cannot go before 1980 (315532800 s after the Unix epoch).
    info = zipfile.ZipInfo(name, date_time=time.localtime(max(seconds, 315532800))[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    # Owner read/write for anyone who unpacks it (as writestr does by default).
    info.external_attr = 0o600 << 16
    return info


def _write(out: IO[bytes], chunk: bytes) -> None:
    out.write(chunk)


def _message_line(item: Any) -> dict[str, Any]:
    m = item.message
    line: dict[str, Any] = {
        "message_id": m.id,
        "conversation_id": m.conversation_id,
        "conversation_name": item.conversation_name,
        "conversation_type": item.conversation_kind,
        "seq": m.seq,
        "kind": m.kind.value,
        "content": m.content,
        "created_at": m.created_at,
        "client_msg_id": m.client_msg_id,
    }
    # As in message frames, optional fields only when set.
    optional = {
        "edited_at": m.edited_at,
        "deleted_at": m.deleted_at,
        "reply_to_id": m.reply_to_id,
        "thread_root_id": m.thread_root_id,
        "attachments": list(m.attachments) or None,
        "mentions": list(m.mentions) or None,
    }
    line.update((k, v) for k, v in optional.items() if v is not None)
    return line
