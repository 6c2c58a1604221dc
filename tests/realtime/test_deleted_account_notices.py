"""A deleted account's name leaves the system notices that named it, wherever they are
served (REST history, socket history and resume), on both engines; other names and the
free text of notices stay."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from palaver.config import Settings
from tests.realtime.conftest import PASSWORD, Server, start_server


@pytest.fixture
async def engine_server(engine_settings: Settings) -> AsyncIterator[Server]:
    async for server in start_server(engine_settings):
        yield server


async def test_notices_say_deleted_user_once_the_account_is_deleted(
    engine_server: Server,
) -> None:
    server = engine_server
    _, bob = await server.user("bob")
    ada_id, ada = await server.user("ada")
    cid = await server.room(bob, "general")
    await server.join(ada, cid)
    promoted = await server.rest(
        bob, "PUT", f"/api/conversations/{cid}/members/{ada_id}/role", json={"role": "admin"}
    )
    assert promoted.status_code == 200, promoted.text
    renamed = await server.rest(bob, "PATCH", f"/api/conversations/{cid}", json={"name": "ada"})
    assert renamed.status_code == 200, renamed.text

    async def notices() -> list[str]:
        history = await server.rest(bob, "GET", f"/api/conversations/{cid}/messages")
        return [m["content"] for m in history.json()["messages"] if m["kind"] == "system"]

    assert await notices() == ["ada joined", "bob made ada admin", "bob renamed the room to ada"]
    deleted = await server.rest(ada, "DELETE", "/api/auth/me", json={"password": PASSWORD})
    assert deleted.status_code == 204, deleted.text

    expected = [
        "Deleted user joined",
        "bob made Deleted user admin",
        # The room's name is the room's, whatever it happens to spell.
        "bob renamed the room to ada",
        "Deleted user left",
    ]
    assert await notices() == expected
    client = await server.connect(bob, resume={cid: 0})
    try:
        backlog = await client.wait_messages(cid, 4)
        assert [m["content"] for m in backlog if m["kind"] == "system"] == expected
        history = await client.request(
            {"type": "history", "conversation_id": cid, "limit": 50}, "history"
        )
        assert [m["content"] for m in history["messages"] if m["kind"] == "system"] == expected
    finally:
        await client.close()
    [listed] = (await server.rest(bob, "GET", "/api/conversations")).json()
    assert listed["last_message"]["content"] == "Deleted user left"
