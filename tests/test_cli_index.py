"""`palaver index`: search indexing as a process of its own, once or until stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from palaver.cli import main
from palaver.core.models import ConversationKind, NewMessage, Role, now_ms
from palaver.core.search import SearchFilter, parse_query
from palaver.store import create_store


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PALAVER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PALAVER_LOG_LEVEL", "warning")
    return tmp_path / "var"


def _url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'palaver.db'}"


async def _post(url: str, text: str) -> int:
    """A room with one message, written straight to the store (no indexer runs)."""
    store = create_store(url)
    await store.connect()
    try:
        await store.migrate()
        ada = await store.create_user(
            username=f"ada{now_ms()}", email=None, display_name="Ada", password_hash="x"
        )
        room = await store.create_conversation(
            kind=ConversationKind.ROOM,
            name=f"room{now_ms()}",
            created_by=ada.id,
            members=[(ada.id, Role.OWNER)],
            at=now_ms(),
        )
        await store.append_messages([NewMessage(room.id, ada.id, text)], now_ms())
        return room.id
    finally:
        await store.close()


async def _found(url: str, room_id: int, words: str) -> int:
    store = create_store(url)
    await store.connect()
    try:
        found = await store.search_messages(
            SearchFilter(query=parse_query(words), conversation_ids=[room_id], limit=10)
        )
        return len(found)
    finally:
        await store.close()


def test_index_once_indexes_what_is_waiting(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = _url(env)
    env.mkdir(parents=True)
    room_id = asyncio.run(_post(url, "quarterly figures attached"))
    assert asyncio.run(_found(url, room_id, "quarterly")) == 0
    assert main(["index", "--once"]) == 0
    assert "indexed 1 messages" in capsys.readouterr().out
    assert asyncio.run(_found(url, room_id, "quarterly")) == 1


def test_index_runs_until_sigterm_and_indexes_new_messages(env: Path) -> None:
    url = _url(env)
    env.mkdir(parents=True)
    asyncio.run(_post(url, "first words"))
    with subprocess.Popen(
        [sys.executable, "-m", "palaver.cli", "index"],
        env={**os.environ, "PALAVER_DATA_DIR": str(env)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as process:
        try:
            room_id = asyncio.run(_post(url, "marmalade recipe"))
            deadline = time.monotonic() + 20
            while asyncio.run(_found(url, room_id, "marmalade")) == 0:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "never indexed"
                time.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            _, errors = process.communicate(timeout=20)
            assert process.returncode == 0, errors
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
