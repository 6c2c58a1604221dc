"""Moderation crosses nodes: a ban, a mute and a deactivation made through one node
reach sockets held by the other at once, and a mute outlives leaving and rejoining."""

from __future__ import annotations

from typing import Any

from tests.cluster.conftest import Cluster
from tests.store.conftest import asyncpg_url, open_store


async def test_ban_mute_and_deactivate_reach_the_other_node(make_cluster: Any) -> None:
    cluster: Cluster = await make_cluster(2, together=True)
    a, b = cluster.nodes
    _, owner = await cluster.user("own")
    carol_id, carol = await cluster.user("carol")
    dave_id, dave = await cluster.user("dave")
    admin_id, admin = await cluster.user("admin")
    store = open_store(asyncpg_url(cluster.database_url))
    await store.connect()
    try:
        await store.update_user(admin_id, is_admin=True)
    finally:
        await store.close()
    room = await cluster.rest(
        a, owner, "POST", "/api/conversations", json={"type": "room", "name": "r"}
    )
    rid = room.json()["id"]
    for token in (carol, dave):
        assert (
            await cluster.rest(b, token, "POST", f"/api/conversations/{rid}/join")
        ).status_code == 200
    carol_b = await cluster.connect(b, carol)
    dave_b = await cluster.connect(b, dave)

    # A mute made on node a is enforced by node b's send path (its memory, no query).
    muted = await cluster.rest(
        a, owner, "PUT", f"/api/conversations/{rid}/members/{dave_id}/mute", json={}
    )
    assert muted.status_code == 200
    assert (await dave_b.next("member_updated"))["muted"] is True
    assert (await dave_b.send_text(rid, "hi"))["code"] == "MUTED"
    # Leaving and coming back through node a does not lift it on node b.
    for step in ("leave", "join"):
        done = await cluster.rest(a, dave, "POST", f"/api/conversations/{rid}/{step}")
        assert done.status_code < 300, done.text
    await dave_b.next("joined")
    assert (await dave_b.send_text(rid, "back again"))["code"] == "MUTED"

    # A ban made on node a removes the room from carol's socket on node b.
    banned = await cluster.rest(
        a, owner, "POST", f"/api/conversations/{rid}/bans", json={"user_id": carol_id}
    )
    assert banned.status_code == 201
    assert (await carol_b.next("left"))["conversation_id"] == rid
    assert (await carol_b.send_text(rid, "let me in"))["code"] == "NOT_FOUND"
    again = await cluster.rest(b, carol, "POST", f"/api/conversations/{rid}/join")
    assert again.json()["error"]["code"] == "BANNED"

    # Deactivation through node a closes dave's socket on node b.
    off = await cluster.rest(a, admin, "POST", f"/api/admin/users/{dave_id}/deactivate")
    assert off.status_code == 200
    assert await dave_b.closed_with() == 4003
    await carol_b.close()
