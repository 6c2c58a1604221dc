"""Group commit: batching, and concurrent batches where the store allows them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from palaver.core.models import Appended, Message, MessageKind, NewMessage
from palaver.services.writer import GroupCommitWriter


class SlowStore:
    """Commits when told to, and records how many transactions overlapped."""

    def __init__(self, concurrency: int) -> None:
        self.append_concurrency = concurrency
        self.batches: list[list[str]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.release = asyncio.Event()
        self.seq = 0

    async def append_messages(self, batch: Sequence[NewMessage], at: int) -> list[Appended]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.batches.append([new.content for new in batch])
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        results = []
        for new in batch:
            self.seq += 1
            message = Message(
                self.seq,
                new.conversation_id,
                self.seq,
                new.sender_id,
                MessageKind.TEXT,
                new.content,
                at,
            )
            results.append(Appended(message, duplicate=False))
        return results


async def append(writer: GroupCommitWriter, message: NewMessage) -> Appended:
    """Queue one message and wait until it is durably stored (or refused)."""
    future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
    writer.submit(message, future)
    return await future


async def run(store: SlowStore, contents: list[str]) -> list[str]:
    writer = GroupCommitWriter(store)  # type: ignore[arg-type]
    sends: list[asyncio.Task[Any]] = []
    for content in contents:
        sends.append(asyncio.create_task(append(writer, NewMessage(1, 1, content))))
        await asyncio.sleep(0)  # let the first batch start before the next send
    await asyncio.sleep(0.01)
    store.release.set()
    done = await asyncio.gather(*sends)
    await writer.close()
    return [appended.message.content for appended in done]


@pytest.mark.parametrize(("concurrency", "most"), [(1, 1), (2, 2), (3, 3)])
async def test_batches_overlap_up_to_the_store_concurrency(concurrency: int, most: int) -> None:
    store = SlowStore(concurrency)
    contents = [f"m{i}" for i in range(6)]
    assert await run(store, contents) == contents
    assert store.most_in_flight == most
    # Whatever queued behind the running transactions went out together.
    assert sorted(c for batch in store.batches for c in batch) == sorted(contents)
    assert len(store.batches) == most + 1


async def test_a_send_right_after_a_batch_ends_is_committed() -> None:
    """The slot of a finished batch is free at once, not one loop turn later."""
    store = SlowStore(1)
    store.release.set()
    writer = GroupCommitWriter(store)  # type: ignore[arg-type]
    first = asyncio.create_task(append(writer, NewMessage(1, 1, "a")))
    await first
    # The drain task has returned but its completion callbacks have not run yet.
    second = await asyncio.wait_for(append(writer, NewMessage(1, 1, "b")), 1)
    assert second.message.content == "b"
    await writer.close()
