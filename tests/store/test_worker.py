"""The thread that runs the SQLite append path's calls in order."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from palaver.store.worker import WorkerThread


async def test_calls_run_in_order_on_one_thread_and_answer_on_the_loop() -> None:
    worker = WorkerThread("test-worker")
    seen: list[tuple[int, str]] = []

    def record(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        return i * 10

    try:
        results = await asyncio.gather(*(worker.submit(record, i) for i in range(50)))
    finally:
        worker.stop()
    assert results == [i * 10 for i in range(50)]
    assert seen == [(i, "test-worker") for i in range(50)]


async def test_an_exception_reaches_the_caller_and_the_thread_goes_on() -> None:
    worker = WorkerThread("test-worker")

    def fail() -> None:
        raise ValueError("refused")

    try:
        with pytest.raises(ValueError, match="refused"):
            await worker.submit(fail)
        assert await worker.submit(lambda: "still serving") == "still serving"
    finally:
        worker.stop()


async def test_a_cancelled_call_still_runs_and_later_calls_wait_for_it() -> None:
    worker = WorkerThread("test-worker")
    release = threading.Event()
    finished: list[str] = []

    def slow() -> str:
        release.wait(5)
        finished.append("slow")
        return "slow"

    try:
        first = worker.submit(slow)
        first.cancel()
        after = worker.submit(lambda: list(finished))
        await asyncio.sleep(0.05)
        assert not after.done()
        release.set()
        # The cancelled call ran to its end before the next one started.
        assert await after == ["slow"]
        assert first.cancelled()
    finally:
        release.set()
        worker.stop()


async def test_stop_ends_the_thread_after_what_was_queued() -> None:
    worker = WorkerThread("test-worker")
    last = worker.submit(time.sleep, 0.05)
    worker.stop()
    await last
    for _ in range(100):
        if not worker.alive:
            break
        await asyncio.sleep(0.01)
    assert not worker.alive


def test_a_call_finishing_after_its_loop_closed_does_not_kill_the_thread() -> None:
    worker = WorkerThread("test-worker")
    release = threading.Event()
    try:
        loop = asyncio.new_event_loop()

        async def submit_and_leave() -> None:
            worker.submit(release.wait, 5)

        loop.run_until_complete(submit_and_leave())
        loop.close()
        release.set()
        assert asyncio.run(_submit(worker, lambda: "next loop")) == "next loop"
    finally:
        release.set()
        worker.stop()


async def _submit(worker: WorkerThread, fn: object) -> object:
    return await worker.submit(fn)  # type: ignore[arg-type]


async def test_nothing_is_taken_after_stop() -> None:
    worker = WorkerThread("test-worker")
    worker.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        worker.submit(lambda: None)
    await worker.drained()  # returns once the thread has ended
    assert not worker.alive


async def test_drained_outlasts_repeated_cancellation() -> None:
    """A caller holding a lock until its abandoned call ends must not be cut short by a
    second cancellation."""
    worker = WorkerThread("test-worker")
    release = threading.Event()
    try:
        worker.submit(release.wait, 5)
        waiting = asyncio.create_task(worker.drained())
        for _ in range(3):
            await asyncio.sleep(0.02)
            waiting.cancel()
        await asyncio.sleep(0.02)
        assert not waiting.done()
        release.set()
        await asyncio.wait_for(asyncio.shield(waiting), 5)
    finally:
        release.set()
        worker.stop()
