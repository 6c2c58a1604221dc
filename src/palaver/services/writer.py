"""Group commit: many concurrent sends, one durable transaction.

While one transaction commits, new sends queue up; the next transaction takes them all.
Under load each fsync acknowledges hundreds of messages; when idle a lone send commits
at once, with no timer adding latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog

from palaver.core.errors import PalaverError
from palaver.core.models import Appended, NewMessage, now_ms
from palaver.store.base import Store

log = structlog.get_logger(__name__)

# Bounds one transaction, so a burst cannot make a single commit arbitrarily slow.
MAX_BATCH = 1024

T = TypeVar("T")
#: A message to append, or a transaction of its own (see :meth:`GroupCommitWriter.run`).
Pending = tuple[NewMessage | Callable[[], Awaitable[Any]], "asyncio.Future[Any]"]


class GroupCommitWriter:
    """Appends messages through :meth:`Store.append_messages` in batches.

    ``append`` returns only after the message's transaction committed, so an ack sent
    after it never covers a message that could be lost.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = MAX_BATCH,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: list[Pending] = []
        self._task: asyncio.Task[None] | None = None
        self._on_batch = on_batch

    async def append(self, message: NewMessage) -> Appended:
        """Queue one message and wait until it is durably stored (or refused)."""
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._queue.append((message, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="palaver.group-commit")
        return await future

    async def run(self, job: Callable[[], Awaitable[T]]) -> T:
        """Run one transaction of its own (an edit, a reaction...) in turn with the
        batches: its commit then falls between theirs, so this node announces every
        entry in sequence order."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append((job, future))
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="palaver.group-commit")
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                job, future = self._queue[0]
                if not isinstance(job, NewMessage):
                    del self._queue[0]
                    await _run_job(job, future)
                    continue
                size = 1
                limit = min(self._max_batch, len(self._queue))
                while size < limit and isinstance(self._queue[size][0], NewMessage):
                    size += 1
                batch = self._queue[:size]
                del self._queue[:size]
                await self._commit(batch)
        finally:
            self._task = None

    async def _commit(self, batch: list[Pending]) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            results = await self._store.append_messages(
                [m for m, _ in batch if isinstance(m, NewMessage)], now_ms()
            )
        except PalaverError as exc:
            # One bad message (say, its conversation was just deleted) must not fail
            # the others that happened to share its transaction: retry them one by one.
            if len(batch) > 1:
                for item in batch:
                    await self._commit([item])
            else:
                _fail(batch, exc)
            return
        except Exception as exc:  # the store is down: nobody in this batch gets an ack
            _fail(batch, exc)
            return
        if self._on_batch is not None:
            self._on_batch(len(batch), loop.time() - started)
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def close(self) -> None:
        """Wait for queued messages to commit."""
        while self._task is not None:
            await asyncio.shield(self._task)


async def _run_job(job: Callable[[], Awaitable[Any]], future: asyncio.Future[Any]) -> None:
    try:
        result = await job()
    except Exception as exc:
        if not future.done():
            future.set_exception(exc)
        return
    if not future.done():
        future.set_result(result)


def _fail(batch: list[Pending], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
