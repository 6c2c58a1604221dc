"""Expiry of uploads never attached to a message (``upload_orphan_hours``).

A file uploaded and then abandoned (the message never sent, the tab closed) would
otherwise stay on disk for good, readable by its uploader only.
"""

from __future__ import annotations

from palaver.services.periodic import PeriodicJob
from palaver.services.uploads import UploadService

# Every ten minutes: files go within a few minutes past their time, and a sweep that
# finds nothing is one indexed query.
INTERVAL_SECONDS = 600.0


class UploadExpiryJob(PeriodicJob):
    """Runs :meth:`UploadService.remove_unattached` every ``interval`` seconds while
    started (every node may run it: a record is deleted once, so its blobs are
    removed once)."""

    name = "upload_expiry"

    def __init__(self, uploads: UploadService, *, interval: float = INTERVAL_SECONDS) -> None:
        super().__init__(interval=interval)
        self._uploads = uploads

    @property
    def enabled(self) -> bool:
        return self._uploads.settings.upload_orphan_hours > 0

    async def run_once(self) -> None:
        await self._uploads.remove_unattached()
