"""The Socket.IO dialects across two nodes sharing PostgreSQL and Redis: each node feeds
its own Socket.IO sockets from the broker's wake-ups, no Socket.IO adapter involved."""

from __future__ import annotations

from typing import Any

from tests.cluster.conftest import Cluster
from tests.compat.conftest import NodeSio, Sio


async def test_seed_002_and_003_events_cross_nodes(make_cluster: Any) -> None:
    cluster: Cluster = await make_cluster(2)
    a, b = cluster.nodes
    ada_id, ada = await cluster.user("ada")
    bob_id, bob = await cluster.user("bob")

    # Seed 002: rooms, python-socketio on node a, socket.io-client on node b.
    on_a = await Sio.connect(a.base, ada)
    on_b = await NodeSio.start(b.base, bob)
    await on_b.wait("connect")
    assert (await on_a.call("join_room", {"room": "general"}))["ok"] is True
    assert (await on_b.call("join_room", {"room": "general"}))["ok"] is True
    assert await on_a.next("system") == {"message": "bob joined"}
    sent = await on_a.call("send_message", {"room": "general", "content": "from node a"})
    got = await on_b.event("message")
    assert (got["id"], got["content"]) == (sent["id"], "from node a")
    await on_b.emit("send_message", {"room": "general", "content": "from node b"})
    assert (await on_a.next("message", content="from node b"))["room"] == "general"
    await on_a.close()
    await on_b.close()

    # Seed 003: a direct conversation, receipts and typing crossing nodes.
    r = await cluster.rest(a, ada, "POST", "/api/conversations", json={"userId": bob_id})
    cid = r.json()["id"]
    ada_a = await Sio.connect(a.base, ada)
    bob_b = await Sio.connect(b.base, bob)
    await ada_a.call("conversation:join", {"conversationId": cid})
    await bob_b.call("conversation:join", {"conversationId": cid})
    ack = await ada_a.call("message:send", {"conversationId": cid, "content": "across"})
    new = await bob_b.next("message:new")
    assert new == ack["message"]
    # A seed 003 socket hears receipts of all its user's conversations: the general
    # room's may still be arriving, so these wait for the direct conversation's.
    assert (await ada_a.next("message:delivered", conversationId=cid))["userId"] == bob_id
    await bob_b.call("message:read", {"messageId": new["id"]})
    assert (await ada_a.next("message:read", conversationId=cid))["messageId"] == new["id"]
    await bob_b.call("typing:start", {"conversationId": cid})
    assert (await ada_a.next("typing:start"))["userId"] == bob_id
    await bob_b.close()
    assert (await ada_a.next("user:offline"))["userId"] == bob_id
    await ada_a.close()
    assert ada_id != bob_id
