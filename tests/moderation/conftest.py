"""One real server on SQLite and one on PostgreSQL for the whole package, with helpers
for moderation tests.

Starting a server per test cost more than most tests themselves. Nothing a test does
leaks into another: every name a test creates carries a random suffix, and tests look
only at their own users, conversations and audit entries. The server's word list
(``darn``, ``heck``, masked) is set for the filter test; no other test sends them.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio

from palaver.config import Settings
from tests.isolated import isolated_settings
from tests.realtime.conftest import PASSWORD, Client, Server, start_server
from tests.services import POSTGRES_URL, create_database, drop_database, require

#: Every test module of the package runs on the package's event loop, where the
#: servers live.
ON_PACKAGE_LOOP = pytest.mark.asyncio(loop_scope="package")

SERVER_WORDS = ["darn", "heck"]


@dataclass
class Person:
    id: int
    token: str
    name: str


@dataclass
class Mod:
    """The server and the steps moderation tests repeat."""

    server: Server
    http: httpx.AsyncClient

    @property
    def services(self) -> Any:
        return self.server.services

    async def person(self, prefix: str = "u", *, admin: bool = False) -> Person:
        name = f"{prefix}{secrets.token_hex(3)}"
        r = await self.http.post(
            "/api/auth/register", json={"username": name, "password": PASSWORD}
        )
        assert r.status_code == 201, r.text
        uid, token = r.json()["user"]["id"], r.json()["token"]
        if admin:
            await self.services.store.update_user(uid, is_admin=True)
        return Person(uid, token, name)

    async def call(self, who: Person, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {who.token}"}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def ok(self, who: Person, method: str, path: str, **kwargs: Any) -> Any:
        r = await self.call(who, method, path, **kwargs)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    async def refused(self, who: Person, method: str, path: str, code: str, **kw: Any) -> Any:
        r = await self.call(who, method, path, **kw)
        assert r.status_code >= 400, r.text
        assert r.json()["error"]["code"] == code, r.text
        return r.json()["error"]

    async def room(self, owner: Person, *members: Person) -> int:
        made = await self.ok(
            owner,
            "POST",
            "/api/conversations",
            json={"type": "room", "name": f"room-{secrets.token_hex(4)}"},
        )
        cid = int(made["id"])
        for member in members:
            await self.ok(member, "POST", f"/api/conversations/{cid}/join")
        return cid

    async def connect(self, who: Person) -> Client:
        return await self.server.connect(who.token, resume={})

    async def send(self, who: Person, cid: int, content: str) -> httpx.Response:
        return await self.call(
            who, "POST", f"/api/conversations/{cid}/messages", json={"content": content}
        )


async def mod_server(settings: Settings, **extra: Any) -> AsyncIterator[Mod]:
    """A server with ``extra`` settings and relaxed message limits."""
    update: dict[str, Any] = {
        "rate_messages_burst": 10_000,
        "rate_messages_per_second": 10_000.0,
        "filter_words": SERVER_WORDS,
        "filter_action": "mask",
        **extra,
    }
    async for server in start_server(settings.model_copy(update=update)):
        async with httpx.AsyncClient(base_url=server.base) as http:
            yield Mod(server, http)


@pytest_asyncio.fixture(
    scope="package",
    loop_scope="package",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ],
)
async def mod(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Mod]:
    settings = isolated_settings(
        tmp_path_factory.mktemp("moderation"),
        log_level="warning",
    )
    extra: dict[str, Any] = {}
    url = None
    if request.param == "postgres":
        require("PostgreSQL", POSTGRES_URL)
        url = extra["database_url"] = create_database()
    try:
        async for value in mod_server(settings, **extra):
            yield value
    finally:
        if url is not None:
            drop_database(url)
