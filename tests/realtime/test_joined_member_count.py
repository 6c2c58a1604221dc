"""The ``joined`` frame on a user's own sockets counts the conversation's members, as
every other description of a conversation does."""

from __future__ import annotations

from .conftest import Server


async def test_joined_frames_carry_the_member_count(server: Server) -> None:
    ada_id, ada = await server.user("ada")
    bob_id, bob = await server.user("bob")
    carol_id, carol = await server.user("carol")
    ada_ws = await server.connect(ada, resume={})
    bob_ws = await server.connect(bob, resume={})
    carol_ws = await server.connect(carol, resume={})

    room = await server.room(ada, "general")
    created = await ada_ws.next("joined")
    assert (created["conversation"]["id"], created["conversation"]["member_count"]) == (room, 1)

    await server.join(bob, room)
    joined = await bob_ws.next("joined")
    assert (joined["conversation"]["id"], joined["conversation"]["member_count"]) == (room, 2)

    r = await server.rest(
        ada,
        "POST",
        "/api/conversations",
        json={"type": "group", "name": "trio", "members": [bob_id]},
    )
    assert r.status_code == 201, r.text
    group = r.json()["id"]
    for ws in (ada_ws, bob_ws):
        frame = await ws.next("joined")
        assert (frame["conversation"]["id"], frame["conversation"]["member_count"]) == (group, 2)

    r = await server.rest(
        ada, "POST", f"/api/conversations/{group}/members", json={"user_id": carol_id}
    )
    assert r.status_code in (200, 201), r.text
    added = await carol_ws.next("joined")
    assert (added["conversation"]["id"], added["conversation"]["member_count"]) == (group, 3)

    r = await server.rest(
        carol, "POST", "/api/conversations", json={"type": "direct", "user_id": ada_id}
    )
    assert r.status_code in (200, 201), r.text
    direct = r.json()["id"]
    for ws in (ada_ws, carol_ws):
        frame = await ws.next("joined")
        assert (frame["conversation"]["id"], frame["conversation"]["member_count"]) == (direct, 2)

    for ws in (ada_ws, bob_ws, carol_ws):
        await ws.close()
