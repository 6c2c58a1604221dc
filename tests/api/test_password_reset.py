"""Password reset by e-mail, through a real SMTP server on loopback."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.api.conftest import Api, open_api
from tests.isolated import isolated_settings


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
async def mail_api(tmp_path: Path, smtp: tuple[Inbox, int]) -> AsyncIterator[Api]:
    settings = isolated_settings(
        tmp_path / "var",
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        public_url="https://chat.example.com",
    )
    async for api in open_api(settings):
        yield api


def code_in(message: Any) -> str:
    body = message.get_payload(decode=True).decode()
    found = re.search(r"Reset code: (\S+)", body)
    assert found, body
    return found.group(1)


async def test_reset_by_mail_is_single_use_and_ends_sessions(
    mail_api: Api, smtp: tuple[Inbox, int]
) -> None:
    api, inbox = mail_api, smtp[0]
    tokens = await api.register("ada", email="ada@example.com")
    asked = await api.http.post("/api/auth/password/forgot", json={"email": "ADA@example.com"})
    assert asked.status_code == 202
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert mail["To"] == "ada@example.com"
    code = code_in(mail)
    assert "https://chat.example.com/#reset=" in mail.get_payload(decode=True).decode()
    done = await api.http.post(
        "/api/auth/password/reset", json={"token": code, "new_password": "Fresh-pass9"}
    )
    assert done.status_code == 204
    assert (await api.login("ada")).status_code == 401
    assert (await api.login("ada", "Fresh-pass9")).status_code == 200
    old = await api.http.get("/api/auth/me", headers=api.bearer(tokens["token"]))
    assert old.status_code == 401
    again = await api.http.post(
        "/api/auth/password/reset", json={"token": code, "new_password": "Other-pass9"}
    )
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "TOKEN_INVALID"
    audit = [e.action for e in await api.services.store.list_audit(limit=100)]
    assert "password.reset_requested" in audit
    assert "password.reset" in audit


async def test_unknown_address_answers_the_same_and_sends_nothing(
    mail_api: Api, smtp: tuple[Inbox, int]
) -> None:
    await mail_api.register("ada", email="ada@example.com")
    unknown = await mail_api.http.post(
        "/api/auth/password/forgot", json={"email": "nobody@example.com"}
    )
    assert unknown.status_code == 202
    assert smtp[0].messages == []


async def test_expired_code_is_refused(
    mail_api: Api, smtp: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    await mail_api.register("ada", email="ada@example.com")
    await mail_api.http.post("/api/auth/password/forgot", json={"email": "ada@example.com"})
    code = code_in(smtp[0].messages[0])
    import palaver.services.auth as auth_module

    later = auth_module.now_ms() + 2 * 3600 * 1000
    monkeypatch.setattr(auth_module, "now_ms", lambda: later)
    expired = await mail_api.http.post(
        "/api/auth/password/reset", json={"token": code, "new_password": "Fresh-pass9"}
    )
    assert expired.status_code == 401


async def test_reset_without_mail_server_says_so(api: Api) -> None:
    await api.register("ada", email="ada@example.com")
    response = await api.http.post("/api/auth/password/forgot", json={"email": "ada@example.com"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "UNAVAILABLE"
