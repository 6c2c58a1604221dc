"""Request bodies are bounded by ``body_max_bytes``: refused by their declared length
before anything is read, cut off while they stream in without one. Uploads keep their
own, larger limit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from palaver.config import ConfigError, Settings, load_settings, message_body_bytes
from palaver.core.uploads import MAX_ATTACHMENTS
from tests.api.conftest import Api, open_api
from tests.isolated import isolated_settings

LIMIT = 64 * 1024


async def limited(tmp_path: Path, **extra: Any) -> AsyncIterator[Api]:
    settings = isolated_settings(
        tmp_path / "var",
        log_level="warning",
        body_max_bytes=LIMIT,
        # Short enough for so small a limit (see message_body_bytes).
        max_message_length=1000,
        **extra,
    )
    async for api in open_api(settings):
        yield api


def assert_refused(response: Any, limit: int = LIMIT) -> None:
    assert response.status_code == 413, response.text
    assert response.json() == {
        "error": {
            "code": "BODY_TOO_LARGE",
            "message": f"the request body is larger than {limit} bytes",
            "max_bytes": limit,
        }
    }
    assert response.headers["connection"] == "close"
    # Outer middlewares still see the refusal.
    assert "x-request-id" in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


def login_body(size: int) -> bytes:
    """A login body of exactly ``size`` bytes."""
    head = b'{"login": "ada", "password": "'
    tail = b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_declared_length_past_the_limit_is_refused_unread(tmp_path: Path) -> None:
    async for api in limited(tmp_path):
        pulled = 0

        async def body() -> AsyncIterator[bytes]:
            nonlocal pulled
            for _ in range(200):
                pulled += 1
                yield b"x" * 1024

        response = await api.http.post(
            "/api/auth/login",
            content=body(),
            headers={"Content-Type": "application/json", "Content-Length": str(200 * 1024)},
        )
        assert_refused(response)
        assert pulled == 0
        # Nobody's login was tried.
        events = await api.services.store.list_audit(limit=10)
        assert [e.action for e in events if e.action.startswith("login")] == []


async def test_streamed_body_is_cut_off_at_the_limit(tmp_path: Path) -> None:
    async for api in limited(tmp_path):
        token = (await api.register("ada"))["access_token"]
        sent = 0

        async def endless() -> AsyncIterator[bytes]:
            nonlocal sent
            yield b'{"content": "'
            for _ in range(10_000):
                sent += 1024
                yield b"x" * 1024

        room = await api.http.post(
            "/api/conversations",
            json={"type": "room", "name": "general"},
            headers=api.bearer(token),
        )
        # No Content-Length: httpx sends the generator chunked.
        response = await api.http.post(
            f"/api/conversations/{room.json()['id']}/messages",
            content=endless(),
            headers={**api.bearer(token), "Content-Type": "application/json"},
        )
        assert_refused(response)
        assert sent <= LIMIT + 1024
        history = await api.http.get(
            f"/api/conversations/{room.json()['id']}/messages", headers=api.bearer(token)
        )
        assert [m["kind"] for m in history.json()["messages"]] == []


async def test_body_at_the_limit_is_read(tmp_path: Path) -> None:
    async for api in limited(tmp_path):
        await api.register("ada")
        at_limit = await api.http.post(
            "/api/auth/login",
            content=login_body(LIMIT),
            headers={"Content-Type": "application/json"},
        )
        # Read and judged by the route: too long a password, not too large a body.
        assert at_limit.status_code == 422, at_limit.text
        assert at_limit.json()["error"]["code"] == "VALIDATION_ERROR"

        async def chunks(data: bytes) -> AsyncIterator[bytes]:
            for start in range(0, len(data), 4096):
                yield data[start : start + 4096]

        streamed = await api.http.post(
            "/api/auth/login",
            content=chunks(login_body(LIMIT)),
            headers={"Content-Type": "application/json"},
        )
        assert streamed.status_code == 422, streamed.text
        over = await api.http.post(
            "/api/auth/login",
            content=chunks(login_body(LIMIT + 1)),
            headers={"Content-Type": "application/json"},
        )
        assert_refused(over)


async def test_uploads_keep_their_own_limit(tmp_path: Path) -> None:
    async for api in limited(tmp_path, upload_max_bytes=1024 * 1024):
        token = (await api.register("ada"))["access_token"]
        data = b"a" * (4 * LIMIT)
        fits = await api.http.post(
            "/api/upload",
            files={"file": ("big.txt", data, "text/plain")},
            headers=api.bearer(token),
        )
        assert fits.status_code == 201, fits.text
        assert fits.json()["size"] == len(data)
        over = await api.http.post(
            "/api/upload",
            files={"file": ("huge.txt", b"a" * (1024 * 1024 + 1), "text/plain")},
            headers=api.bearer(token),
        )
        assert over.status_code == 413
        assert over.json()["error"]["code"] == "FILE_TOO_LARGE"


async def test_the_largest_legitimate_send_fits_the_default(tmp_path: Path) -> None:
    longest = 60_000
    settings = isolated_settings(
        tmp_path / "var",
        log_level="warning",
        max_message_length=longest,
    )
    async for api in open_api(settings):
        token = (await api.register("ada"))["access_token"]
        auth = api.bearer(token)
        room = await api.http.post(
            "/api/conversations", json={"type": "room", "name": "general"}, headers=auth
        )
        cid = room.json()["id"]
        uploads = []
        for index in range(MAX_ATTACHMENTS):
            done = await api.http.post(
                "/api/upload",
                files={"file": (f"f{index}.txt", b"hello", "text/plain")},
                data={"conversation_id": str(cid)},
                headers=auth,
            )
            assert done.status_code == 201, done.text
            uploads.append(done.json()["id"])
        # json.dumps escapes every emoji as a surrogate pair: 12 bytes a character.
        body = json.dumps(
            {
                "content": "\U0001f600" * longest,
                "client_msg_id": "\U0001f600" * 64,
                "attachments": uploads,
                "reply_to_id": None,
            }
        ).encode()
        assert len(body) > 12 * longest
        assert len(body) <= message_body_bytes(longest) <= settings.body_max_bytes
        sent = await api.http.post(
            f"/api/conversations/{cid}/messages",
            content=body,
            headers={**auth, "Content-Type": "application/json"},
        )
        assert sent.status_code == 201, sent.text


async def test_filter_of_the_most_and_longest_words_fits_the_default(api: Api) -> None:
    token = (await api.register("ada"))["access_token"]
    auth = api.bearer(token)
    room = await api.http.post(
        "/api/conversations", json={"type": "room", "name": "general"}, headers=auth
    )
    words = [f"{index:04d}" + "\U0001f600" * 60 for index in range(1000)]
    body = json.dumps({"words": words}).encode()
    assert len(body) > 700_000
    response = await api.http.put(
        f"/api/conversations/{room.json()['id']}/filter",
        content=body,
        headers={**auth, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text


def test_a_limit_too_small_for_the_longest_message_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="body_max_bytes"):
        load_settings(
            config_file=None,
            environ={"PALAVER_BODY_MAX_BYTES": str(100 * 1024)},
            overrides={"max_message_length": 60_000},
        )
    with pytest.raises(ConfigError, match="body_max_bytes"):
        load_settings(config_file=None, environ={"PALAVER_BODY_MAX_BYTES": "1000"})
    assert load_settings(config_file=None, environ={}).body_max_bytes == 1024 * 1024


def test_default_settings_leave_room(settings: Settings) -> None:
    assert settings.body_max_bytes >= message_body_bytes(60_000)


async def test_socket_io_polling_keeps_ws_max_frame(tmp_path: Path) -> None:
    async for api in limited(tmp_path, ws_max_frame=2 * LIMIT):
        # Past body_max_bytes but within ws_max_frame: Engine.IO judges it (an unknown
        # session here), not the body limit.
        within = await api.http.post(
            "/socket.io/?EIO=4&transport=polling&sid=nobody",
            content=b"4" * (LIMIT + 1),
            headers={"Content-Type": "text/plain"},
        )
        assert within.status_code != 413, within.text
        over = await api.http.post(
            "/socket.io/?EIO=4&transport=polling&sid=nobody",
            content=b"4" * (2 * LIMIT + 1),
            headers={"Content-Type": "text/plain"},
        )
        assert_refused(over, 2 * LIMIT)
