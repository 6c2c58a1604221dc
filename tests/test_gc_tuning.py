"""A serving process freezes what startup built once the application has started; the
application itself (as tests build it) does not."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from palaver import server


@pytest.fixture
def restore_gc() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_tune_gc_freezes_what_was_built_before(restore_gc: None) -> None:
    gc.unfreeze()
    thresholds = gc.get_threshold()
    built_at_startup = [[] for _ in range(10)]
    server.tune_gc()
    assert gc.get_freeze_count() > len(built_at_startup)
    # A wider young generation costs memory per idle connection.
    assert gc.get_threshold() == thresholds


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

    await server._tune_gc_on_startup(app)({"type": "lifespan"}, receive, send)
    assert calls == [
        "starting",
        "tuned",
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
