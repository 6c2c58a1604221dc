"""History retention: delete messages older than ``history_retention_days``.

Clients that later ask for the removed range get an explicit gap (REST ``gap``, socket
``gap`` frame), never a silent hole.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from palaver.core.models import now_ms
from palaver.store.base import Store, StoreUnavailable

log = structlog.get_logger(__name__)

DAY_MS = 86_400_000
# Hourly is plenty for a limit counted in days, and cheap: the purge uses the
# created_at index and deletes in one transaction.
INTERVAL_SECONDS = 3600.0


class RetentionJob:
    """Runs :meth:`purge_once` every ``interval`` seconds while started."""

    def __init__(self, store: Store, days: int, *, interval: float = INTERVAL_SECONDS) -> None:
        self._store = store
        self._days = days
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def purge_once(self, now: int | None = None) -> int:
        """Delete what is older than the retention period; return how many went."""
        cutoff = (now if now is not None else now_ms()) - self._days * DAY_MS
        deleted = await self._store.purge_messages_before(cutoff)
        if deleted:
            log.info("retention.purged", deleted=deleted, days=self._days)
        return deleted

    def start(self) -> None:
        if self._days > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="palaver.retention")

    async def _run(self) -> None:
        while True:
            try:
                await self.purge_once()
            except StoreUnavailable as exc:
                log.warning("retention.failed", error=str(exc))
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
