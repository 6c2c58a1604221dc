"""A real server on SQLite and on PostgreSQL, with helpers for moderation tests.

PostgreSQL tests share one throwaway database for the session, so every name a test
creates carries a random suffix.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from palaver.config import Settings
from tests.realtime.conftest import Client, Server, start_server
from tests.services import POSTGRES_URL, create_database, drop_database, require


@pytest.fixture(scope="session")
def moderation_pg_url() -> Iterator[str]:
    require("PostgreSQL", POSTGRES_URL)
    url = create_database()
    yield url
    drop_database(url)


@dataclass
class Person:
    id: int
    token: str
    name: str


@dataclass
class Mod:
    """The server and the steps moderation tests repeat."""

    server: Server

    @property
    def services(self) -> Any:
        return self.server.services

    async def person(self, prefix: str = "u", *, admin: bool = False) -> Person:
        name = f"{prefix}{secrets.token_hex(3)}"
        uid, token = await self.server.user(name)
        if admin:
            await self.services.store.update_user(uid, is_admin=True)
        return Person(uid, token, name)

    async def call(self, who: Person, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.server.rest(who.token, method, path, **kwargs)

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
        cid = await self.server.room(owner.token, f"room-{secrets.token_hex(4)}")
        for member in members:
            await self.ok(member, "POST", f"/api/conversations/{cid}/join")
        return cid

    async def connect(self, who: Person) -> Client:
        return await self.server.connect(who.token, resume={})

    async def send(self, who: Person, cid: int, content: str) -> httpx.Response:
        return await self.call(
            who, "POST", f"/api/conversations/{cid}/messages", json={"content": content}
        )


async def mod_server(
    settings: Settings, request: pytest.FixtureRequest, **extra: Any
) -> AsyncIterator[Mod]:
    """A server on the database ``request.param`` names, with ``extra`` settings."""
    update: dict[str, Any] = {
        "rate_messages_burst": 10_000,
        "rate_messages_per_second": 10_000.0,
        **extra,
    }
    if request.param == "postgres":
        update["database_url"] = request.getfixturevalue("moderation_pg_url")
    async for server in start_server(settings.model_copy(update=update)):
        yield Mod(server)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
async def mod(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Mod]:
    async for value in mod_server(settings, request):
        yield value


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite")])
async def mod_sqlite(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Mod]:
    """For behaviour that does not depend on the database (already run on both)."""
    async for value in mod_server(settings, request):
        yield value
