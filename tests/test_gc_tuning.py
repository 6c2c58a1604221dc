"""A serving process freezes what startup built and widens the young generation, once
the application has started; the application itself (as tests build it) does not."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from palaver import server


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tune_gc_freezes_startup_objects_and_widens_generation_0(restore_gc: None) -> None:
    gc.unfreeze()
    built_at_startup = [object() for _ in range(10)]
    server.tune_gc()
    assert gc.get_freeze_count() > len(built_at_startup)
    assert gc.get_threshold()[0] == server.GC_THRESHOLD0


async def test_tuning_waits_for_the_application_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(server, "tune_gc", lambda: calls.append("tuned"))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        calls.append("starting")
        await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})

    async def send(message: Any) -> None:
        calls.append(message["type"])

    async def receive() -> Any:
        return {"type": "lifespan.startup"}

    await server._TuneGcOnStartup(app)({"type": "lifespan"}, receive, send)
    assert calls == [
        "starting",
        "tuned",
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
