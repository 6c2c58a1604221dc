"""Group commit: many concurrent sends, one durable transaction.

While one transaction commits, new sends queue up; the next transaction takes them all.
Under load each fsync acknowledges hundreds of messages; when idle a lone send commits
at once, with no timer adding latency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import structlog

from palaver.core.errors import PalaverError
from palaver.core.models import NewMessage, now_ms
from palaver.store.base import Store

log = structlog.get_logger(__name__)

# Bounds one transaction, so a burst cannot make a single commit arbitrarily slow.
MAX_BATCH = 1024

T = TypeVar("T")


class Waiter(Protocol):
    """What hears a message's outcome: an :class:`asyncio.Future` or any object with
    the same three methods. Told in commit order, inside the commit's own turn."""

    def done(self) -> bool: ...
    def set_result(self, result: Any, /) -> None: ...
    def set_exception(self, exception: BaseException, /) -> None: ...


#: A message to append, or a transaction of its own (see :meth:`GroupCommitWriter.run`).
Pending = tuple[NewMessage | Callable[[], Awaitable[Any]], Waiter]


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
        # Batches committing at once. A socket sends its next message only after the
        # ack of the previous one, so two of one sender's messages never share the
        # race between concurrent batches; within a conversation, row locks keep
        # sequence numbers in commit order.
        self._concurrency = max(1, store.append_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._on_batch = on_batch

    def submit(self, message: NewMessage, waiter: Waiter) -> None:
        """Queue one message; ``waiter`` is given its
        :class:`~palaver.core.models.Appended` once the message is durably stored, or
        the exception that refused it."""
        self._enqueue((message, waiter))

    async def run(self, job: Callable[[], Awaitable[T]]) -> T:
        """Run one transaction of its own (an edit, a reaction...) in turn with the
        batches: its commit then falls between theirs, so this node announces every
        entry in sequence order."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue((job, future))
        return await future

    def _enqueue(self, item: Pending) -> None:
        self._queue.append(item)
        if len(self._tasks) < self._concurrency:
            self._tasks.add(asyncio.create_task(self._drain(), name="palaver.group-commit"))

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
            # Here, not in a done callback: a send queued between the last batch and
            # such a callback would find every slot taken and wait forever.
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)

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
        while self._tasks:
            await asyncio.shield(next(iter(self._tasks)))


async def _run_job(job: Callable[[], Awaitable[Any]], future: Waiter) -> None:
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
