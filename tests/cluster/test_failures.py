"""Failures: a node killed mid-burst, Redis restarted, PostgreSQL cut. Nothing that was
acknowledged is lost, nothing is stored twice, every member ends with the same log."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
from typing import Any

import orjson
import pytest

from tests.broker.proxy import TcpProxy
from tests.cluster.conftest import Cluster
from tests.deployment import Deployment, Node, free_port
from tests.realtime.conftest import Client
from tests.services import in_ci

Make = Any


def send_frame(rid: int, i: int) -> str:
    return orjson.dumps(
        {
            "type": "send",
            "id": i,
            "conversation_id": rid,
            "content": f"m{i}",
            "client_msg_id": f"c{i}",
        }
    ).decode()


def acks_of(client: Client) -> dict[int, int]:
    """Command id -> seq of every ack this client received."""
    return {
        frame["id"]: frame["seq"]
        for frame in list(client.frames._queue)  # type: ignore[attr-defined]
        if frame["type"] == "ack"
    }


async def converge(client: Client, rid: int, last: int, timeout: float = 20) -> list[int]:
    async with asyncio.timeout(timeout):
        while True:
            got = [m["seq"] for m in client.messages if m["conversation_id"] == rid]
            if got and got[-1] >= last:
                return got
            await asyncio.sleep(0.05)


async def retry_until_acked(client: Client, rid: int, pending: list[int]) -> dict[int, int]:
    """Re-send (pipelined, as a client's outbox does, within the server's limit of
    frames in flight per socket) and wait for every ack."""
    replies: list[dict[str, Any]] = []
    for start in range(0, len(pending), 100):
        replies += await asyncio.gather(
            *(
                client.request(
                    {
                        "type": "send",
                        "conversation_id": rid,
                        "content": f"m{i}",
                        "client_msg_id": f"c{i}",
                    },
                    "ack",
                )
                for i in pending[start : start + 100]
            )
        )
    assert all(reply["type"] == "ack" for reply in replies), replies
    return {i: reply["seq"] for i, reply in zip(pending, replies, strict=True)}


async def room_with(cluster: Cluster, node: Node, owner: str, *members: str) -> int:
    created = await cluster.rest(
        node, owner, "POST", "/api/conversations", json={"type": "room", "name": "burst"}
    )
    rid: int = created.json()["id"]
    for token in members:
        assert (
            await cluster.rest(node, token, "POST", f"/api/conversations/{rid}/join")
        ).is_success
    return rid


async def test_sigkill_mid_burst_loses_and_duplicates_nothing(make_cluster: Make) -> None:
    cluster: Cluster = await make_cluster(2)
    a, b = cluster.nodes
    _, ada = await cluster.user("ada")
    _, bob = await cluster.user("bob")
    _, cat = await cluster.user("cat")
    rid = await room_with(cluster, a, ada, bob, cat)
    sender = await cluster.connect(a, ada)
    bob_a = await cluster.connect(a, bob)
    cat_b = await cluster.connect(b, cat)
    total = 400
    for i in range(total):
        await sender.ws.send(send_frame(rid, i))
        if i == total // 3:
            # Let some acks arrive, then kill the node while the rest are in flight.
            async with asyncio.timeout(10):
                while len(acks_of(sender)) < 20:
                    await asyncio.sleep(0.01)
            a.send_signal(signal.SIGKILL)
            break
    await a.wait()
    acked = acks_of(sender)
    bob_before = [m["seq"] for m in bob_a.messages]
    assert acked, "the node died before acknowledging anything"

    # The sender moves to the surviving node and retries everything not acknowledged,
    # then finishes the burst there.
    sender_b = await cluster.connect(b, ada)
    pending = [i for i in range(total) if i not in acked]
    retried = await retry_until_acked(sender_b, rid, pending)
    bob_b = await cluster.connect(b, bob, resume={rid: bob_before[-1] if bob_before else 0})
    history = await cluster.rest(
        b, ada, "GET", f"/api/conversations/{rid}/messages?after=0&limit=200"
    )
    log = list(history.json()["messages"])
    while history.json()["has_more"]:
        history = await cluster.rest(
            b, ada, "GET", f"/api/conversations/{rid}/messages?after={log[-1]['seq']}&limit=200"
        )
        log += history.json()["messages"]
    seqs = [m["seq"] for m in log]
    last = seqs[-1]
    assert seqs == list(range(1, last + 1)), "the stored log has a gap"
    texts = [m["content"] for m in log if m["kind"] == "text"]
    assert sorted(texts) == sorted(f"m{i}" for i in range(total)), "lost or duplicated"
    # Acknowledged messages kept their sequence numbers; retries of them would be no-ops.
    by_content = {m["content"]: m["seq"] for m in log}
    for i, seq in {**acked, **retried}.items():
        assert by_content[f"m{i}"] == seq
    # Every member has everything, once, in order.
    # (Cat joined after "bob joined": her log starts after it.)
    cat_start = next(c["delivered_seq"] for c in cat_b.hello["conversations"] if c["id"] == rid)
    assert await converge(cat_b, rid, last) == list(range(cat_start + 1, last + 1))
    assert bob_before + await converge(bob_b, rid, last) == list(range(1, last + 1))
    for client in (sender_b, bob_b, cat_b):
        await client.close()


async def _own_redis() -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        if in_ci():
            pytest.fail("redis-server is not installed")
        pytest.skip("*** redis-server is not installed: cannot restart a private Redis ***")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return process, port
        await asyncio.sleep(0.05)
    pytest.fail("private redis-server did not start")


async def test_redis_restart_during_traffic_loses_nothing(make_cluster: Make) -> None:
    redis, port = await _own_redis()
    try:
        cluster: Cluster = await make_cluster(
            2, redis_url=f"redis://127.0.0.1:{port}/0", presence_ttl="3"
        )
        a, b = cluster.nodes
        _, ada = await cluster.user("ada")
        _, bob = await cluster.user("bob")
        rid = await room_with(cluster, a, ada, bob)
        sender = await cluster.connect(a, ada)
        reader = await cluster.connect(b, bob)
        acked: dict[int, int] = {}
        for i in range(30):
            reply = await sender.send_text(rid, f"m{i}", client_msg_id=f"c{i}")
            acked[i] = reply["seq"]
        redis.kill()
        redis.wait()
        # Chat goes on without Redis: the database has every message, the rate limit
        # falls back to a per-node bucket, and the other node catches up by itself.
        for i in range(30, 40):
            reply = await sender.send_text(rid, f"m{i}", client_msg_id=f"c{i}")
            assert reply["type"] == "ack", reply
            acked[i] = reply["seq"]
        during = await converge(reader, rid, max(acked.values()), timeout=30)
        assert during == list(range(1, max(acked.values()) + 1))
        redis = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        await asyncio.sleep(0.5)
        for i in range(40, 60):
            async with asyncio.timeout(20):
                while True:
                    reply = await sender.send_text(rid, f"m{i}", client_msg_id=f"c{i}")
                    if reply["type"] == "ack":
                        acked[i] = reply["seq"]
                        break
                    await asyncio.sleep(0.2)
        last = max(acked.values())
        got = await converge(reader, rid, last, timeout=30)
        assert got == list(range(1, last + 1))
        await sender.close()
        await reader.close()
    finally:
        redis.kill()
        redis.wait()


async def test_postgres_cut_gives_retryable_errors_and_the_pool_recovers(
    make_cluster: Make, deployment: Deployment
) -> None:
    database = deployment.database_url
    host_port = database.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    via_proxy = database.replace(host_port, f"127.0.0.1:{proxy.port}")
    try:
        cluster: Cluster = await make_cluster(1, database_url=via_proxy)
        (node,) = cluster.nodes
        _, ada = await cluster.user("ada")
        created = await cluster.rest(
            node, ada, "POST", "/api/conversations", json={"type": "room", "name": "r"}
        )
        rid = created.json()["id"]
        client = await cluster.connect(node, ada)
        assert (await client.send_text(rid, "before", client_msg_id="b"))["type"] == "ack"
        await proxy.stop()
        during = await client.send_text(rid, "during", client_msg_id="d")
        assert during["type"] == "error"
        assert during["code"] == "UNAVAILABLE"
        assert during["retry_after"] > 0
        health = await cluster.rest(node, ada, "GET", "/health")
        assert health.status_code == 503
        await proxy.start()
        # The same process, the same pool: it reconnects by itself.
        async with asyncio.timeout(20):
            while True:
                again = await client.send_text(rid, "during", client_msg_id="d")
                if again["type"] == "ack":
                    break
                await asyncio.sleep(0.2)
        history = await cluster.rest(node, ada, "GET", f"/api/conversations/{rid}/messages")
        assert [m["content"] for m in history.json()["messages"]] == ["before", "during"]
        assert (await cluster.rest(node, ada, "GET", "/health")).status_code == 200
        await client.close()
    finally:
        await proxy.stop()
