from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from palaver.cli import main
from palaver.config import load_settings
from palaver.core.models import ConversationKind, NewMessage, Role, now_ms
from palaver.core.search import SearchFilter, parse_query
from palaver.services.tokens import TokenService
from palaver.store import create_store


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PALAVER_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("PALAVER_LOG_LEVEL", "warning")
    monkeypatch.setenv("PALAVER_NEW_PASSWORD", "Sup3r-secret")
    return tmp_path / "var"


def test_migrate_user_create_list_token_deactivate(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 0
    assert "newest schema" in capsys.readouterr().out
    assert main(["user", "create", "ada", "--email", "ada@example.com", "--admin"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["username"] == "ada"
    assert main(["user", "create", "bob"]) == 0
    capsys.readouterr()
    assert main(["user", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split("\t") == ["1", "ada", "ada@example.com", "active admin"]
    assert listing[1].split("\t")[:2] == ["2", "bob"]

    assert main(["token", "ada"]) == 0
    token = capsys.readouterr().out.strip()
    settings = load_settings()
    secret = (env / "secret_key").read_text().strip()
    claims = TokenService(
        secret, issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl=900
    ).verify(token)
    assert claims.user_id == 1

    assert main(["user", "deactivate", "bob"]) == 0
    assert "deactivated" in capsys.readouterr().out
    assert main(["user", "list"]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith("inactive")
    with pytest.raises(SystemExit, match="deactivated"):
        main(["token", "bob"])
    with pytest.raises(SystemExit, match="no user"):
        main(["token", "nobody"])


def test_user_create_refuses_weak_password_and_duplicates(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["user", "create", "ada"]) == 0
    assert main(["user", "create", "ada"]) == 1
    assert "CONFLICT" in capsys.readouterr().err
    monkeypatch.setenv("PALAVER_NEW_PASSWORD", "weak")
    assert main(["user", "create", "bob"]) == 1
    assert "WEAK_PASSWORD" in capsys.readouterr().err


def test_config_prints_effective_settings_without_secrets(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALAVER_SECRET_KEY", "k" * 40)
    monkeypatch.setenv("PALAVER_DATABASE_URL", "postgresql://app:hunter2@db/chat")
    assert main(["config", "--port", "9001"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["port"] == 9001
    assert shown["secret_key"] == "***"
    assert shown["database_url"] == "postgresql://app:***@db/chat"


def test_invalid_setting_stops_with_a_clear_message(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PALAVER_LOG_LEVEL", "chatty")
    assert main(["config"]) == 2
    err = capsys.readouterr().err
    assert "log_level" in err
    assert "accepted values: debug, info, warning, error" in err
    monkeypatch.setenv("PALAVER_LOG_LEVEL", "info")
    assert main(["serve", "--port", "70000"]) == 2
    assert "port" in capsys.readouterr().err


def test_workers_need_redis(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "2"]) == 2
    assert "redis_url" in capsys.readouterr().err


# -- palaver index: search indexing as a process of its own ------------------------------


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
