"""A job every node runs on a timer while started (retention, upload expiry)."""

from __future__ import annotations

import abc
import asyncio
import contextlib

import structlog

from palaver.store.base import StoreUnavailable

log = structlog.get_logger(__name__)


class PeriodicJob(abc.ABC):
    """Runs :meth:`run_once` at start and then every ``interval`` seconds. A database
    outage skips one round (logged); the next round tries again."""

    name: str = "job"

    def __init__(self, *, interval: float) -> None:
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return True

    @abc.abstractmethod
    async def run_once(self) -> None:
        """One round of the job's work."""

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"palaver.{self.name}")

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except StoreUnavailable as exc:
                log.warning(f"{self.name}.failed", error=str(exc))
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
