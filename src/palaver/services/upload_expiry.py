"""Expiry of uploads never attached to a message (``upload_orphan_hours``).

A file uploaded and then abandoned (the message never sent, the tab closed) would
otherwise stay on disk for good, readable by its uploader only.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from palaver.services.uploads import UploadService
from palaver.store.base import StoreUnavailable

log = structlog.get_logger(__name__)

# Every ten minutes: files go within a few minutes past their time, and a sweep that
# finds nothing is one indexed query.
INTERVAL_SECONDS = 600.0


class UploadExpiryJob:
    """Runs :meth:`UploadService.remove_unattached` every ``interval`` seconds while
    started (every node may run it: a record is deleted once, so its blobs are
    removed once)."""

    def __init__(self, uploads: UploadService, *, interval: float = INTERVAL_SECONDS) -> None:
        self._uploads = uploads
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._uploads.settings.upload_orphan_hours > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="palaver.upload_expiry")

    async def _run(self) -> None:
        while True:
            try:
                await self._uploads.remove_unattached()
            except StoreUnavailable as exc:
                log.warning("upload_expiry.failed", error=str(exc))
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
