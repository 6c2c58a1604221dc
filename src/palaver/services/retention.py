"""History retention: delete messages older than ``history_retention_days``.

Clients that later ask for the removed range get an explicit gap (REST ``gap``, socket
``gap`` frame), never a silent hole.
"""

from __future__ import annotations

import structlog

from palaver.core.models import now_ms
from palaver.services.periodic import PeriodicJob
from palaver.store.base import Store

log = structlog.get_logger(__name__)

DAY_MS = 86_400_000
# Hourly is plenty for a limit counted in days, and cheap: the purge uses the
# created_at index and deletes in one transaction.
INTERVAL_SECONDS = 3600.0


class RetentionJob(PeriodicJob):
    """Runs :meth:`purge_once` every ``interval`` seconds while started."""

    name = "retention"

    def __init__(self, store: Store, days: int, *, interval: float = INTERVAL_SECONDS) -> None:
        super().__init__(interval=interval)
        self._store = store
        self._days = days

    @property
    def enabled(self) -> bool:
        return self._days > 0

    async def run_once(self) -> None:
        await self.purge_once()

    async def purge_once(self, now: int | None = None) -> int:
        """Delete what is older than the retention period; return how many went."""
        cutoff = (now if now is not None else now_ms()) - self._days * DAY_MS
        deleted = await self._store.purge_messages_before(cutoff)
        if deleted:
            log.info("retention.purged", deleted=deleted, days=self._days)
        return deleted
