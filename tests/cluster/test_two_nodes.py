"""Two nodes on one PostgreSQL and one Redis: everything crosses between them."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest

from tests.cluster.conftest import Cluster

Make = Any


async def test_messages_receipts_typing_presence_cross_nodes(make_cluster: Make) -> None:
    cluster: Cluster = await make_cluster(2)
    a, b = cluster.nodes
    ada_id, ada = await cluster.user("ada")
    bob_id, bob = await cluster.user("bob")
    room = await cluster.rest(
        a, ada, "POST", "/api/conversations", json={"type": "room", "name": "g"}
    )
    rid = room.json()["id"]
    on_a = await cluster.connect(a, ada)
    assert (await cluster.rest(b, bob, "POST", f"/api/conversations/{rid}/join")).status_code == 200
    on_b = await cluster.connect(b, bob)
    assert on_a.hello["node"] != on_b.hello["node"]

    # Presence crosses: Ada sees Bob online although he is on the other node.
    online = await on_a.request({"type": "get_online_users"}, "online_users")
    assert [u["id"] for u in online["users"]] == [bob_id]

    # Room messages both ways.
    ack = await on_a.send_text(rid, "from a")
    assert ack["type"] == "ack"
    got = await on_b.wait_messages(rid, 2)
    assert [m["content"] for m in got] == ["bob joined", "from a"]
    await on_b.send_text(rid, "from b")
    got = await on_a.wait_messages(rid, 3)
    assert got[-1]["content"] == "from b"

    # Direct messages both ways, the conversation created on the first message.
    dm = await on_b.request({"type": "send", "to": "ada", "content": "psst"}, "ack")
    assert dm["type"] == "ack"
    joined = await on_a.next("joined")
    assert joined["conversation"]["type"] == "direct"
    assert (await on_a.wait_messages(dm["conversation_id"], 1))[0]["content"] == "psst"
    back = await on_a.request({"type": "send", "to": bob_id, "content": "ok"}, "ack")
    assert back["conversation_id"] == dm["conversation_id"]
    assert (await on_b.wait_messages(dm["conversation_id"], 2))[-1]["content"] == "ok"

    # Receipts and typing cross too.
    await on_b.request({"type": "read", "conversation_id": rid, "seq": 3})
    receipt = await on_a.next("receipt")
    while receipt["user_id"] != bob_id:
        receipt = await on_a.next("receipt")
    assert receipt["read_seq"] == 3
    await on_a.ws.send(f'{{"type": "typing", "conversation_id": {rid}}}')
    typing = await on_b.next("typing")
    assert typing["user_id"] == ada_id

    # Presence going offline crosses back.
    await on_b.close()
    offline = await on_a.next("presence")
    while offline["user_id"] != bob_id or offline["status"] != "offline":
        offline = await on_a.next("presence")
    await on_a.close()


async def test_logout_on_one_node_closes_sockets_on_every_node(make_cluster: Make) -> None:
    cluster: Cluster = await make_cluster(2)
    a, b = cluster.nodes
    _, token = await cluster.user("ada")
    first = await cluster.connect(a, token)
    second = await cluster.connect(b, token)
    assert (await cluster.rest(a, token, "POST", "/api/auth/logout")).status_code == 204
    assert await first.closed_with() == 4003
    assert await second.closed_with() == 4003


async def test_rate_limits_are_shared_across_nodes(make_cluster: Make) -> None:
    cluster: Cluster = await make_cluster(
        2, rate_messages_burst="10", rate_messages_per_second="0.1"
    )
    a, b = cluster.nodes
    _, ada = await cluster.user("ada")
    room = await cluster.rest(
        a, ada, "POST", "/api/conversations", json={"type": "room", "name": "g"}
    )
    rid = room.json()["id"]
    on_a = await cluster.connect(a, ada)
    on_b = await cluster.connect(b, ada)
    replies = await asyncio.gather(
        *(client.send_text(rid, f"m{i}") for i in range(8) for client in (on_a, on_b))
    )
    acked = [r for r in replies if r["type"] == "ack"]
    refused = [r for r in replies if r["type"] == "error"]
    # One bucket of 10 for the user, whichever node the sends arrive on.
    assert len(acked) == 10
    assert {r["code"] for r in refused} == {"RATE_LIMITED"}
    await on_a.close()
    await on_b.close()


async def test_presence_expires_when_a_node_dies(make_cluster: Make) -> None:
    cluster: Cluster = await make_cluster(2, presence_ttl="2")
    a, b = cluster.nodes
    _, ada = await cluster.user("ada")
    bob_id, bob = await cluster.user("bob")
    await cluster.rest(
        a, ada, "POST", "/api/conversations", json={"type": "direct", "user_id": bob_id}
    )
    watcher = await cluster.connect(a, ada)
    await cluster.connect(b, bob)
    online = await watcher.request({"type": "get_online_users"}, "online_users")
    assert [u["id"] for u in online["users"]] == [bob_id]
    b.send_signal(signal.SIGKILL)
    await b.wait()
    # Nobody said goodbye: the presence entry expires with the dead node's heartbeat.
    async with asyncio.timeout(15):
        while True:
            online = await watcher.request({"type": "get_online_users"}, "online_users")
            if not online["users"]:
                break
            await asyncio.sleep(1)
    await watcher.close()


async def test_connection_limit_per_ip_is_shared_across_nodes(make_cluster: Make) -> None:
    import websockets

    cluster: Cluster = await make_cluster(2, max_connections_per_ip="2")
    a, b = cluster.nodes
    _, token = await cluster.user("ada")
    on_a = await cluster.connect(a, token)
    on_b = await cluster.connect(b, token)
    for node in (a, b):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"{node.ws_url}?token={token}")
        assert refused.value.response.status_code == 429
    await on_a.close()
    await on_b.close()
