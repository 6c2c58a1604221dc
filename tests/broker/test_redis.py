"""Redis-only behaviour: reconnection of the pub/sub reader, namespaces, unreachability."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from palaver.broker import redis as redis_broker
from palaver.broker.base import Broker, BrokerUnavailable, PresenceStatus
from palaver.broker.redis import RedisBroker
from tests.broker.conftest import Cluster, Inbox
from tests.broker.proxy import TcpProxy
from tests.services import REDIS_URL, delete_namespace, require

pytestmark = pytest.mark.redis

# Port 1 is never a Redis server; connecting is refused at once.
UNREACHABLE_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
async def redis_cluster() -> AsyncIterator[Cluster]:
    require("Redis", REDIS_URL)
    cluster = Cluster("redis", f"palaver-test-{secrets.token_hex(6)}")
    try:
        yield cluster
    finally:
        await cluster.close()
        await delete_namespace(cluster.namespace)


@pytest.fixture
async def admin() -> AsyncIterator[Redis]:
    require("Redis", REDIS_URL)
    client = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


async def kill_pubsub(admin: Redis, broker: Broker, namespace: str) -> None:
    """Kill ``broker``'s pub/sub connection, as a Redis restart would (and only it:
    other test runs may share this Redis)."""
    name = f"{namespace}:{broker.node_id}:pubsub"
    clients = [c for c in await admin.client_list(_type="pubsub") if c["name"] == name]
    assert clients, f"no pub/sub connection named {name}"
    for client in clients:
        await admin.client_kill_filter(_id=client["id"])


async def publish_until_received(
    publisher: Broker, inbox: Inbox, channel: str, timeout: float = 5.0
) -> None:
    """Publish to ``channel`` every 50 ms until ``inbox`` hears something."""
    async with asyncio.timeout(timeout):
        while not inbox.received:
            await publisher.publish(channel, b"probe")
            await asyncio.sleep(0.05)


async def test_reader_resubscribes_after_its_connection_dies(
    redis_cluster: Cluster, admin: Redis
) -> None:
    a, b = await redis_cluster.node("node-a"), await redis_cluster.node("node-b")
    inbox = Inbox()
    await b.subscribe(inbox, ["conv:1", "conv:2"])
    for _ in range(2):  # and again, once reconnected
        inbox.received.clear()
        await kill_pubsub(admin, b, redis_cluster.namespace)
        await publish_until_received(a, inbox, "conv:1")
    inbox.received.clear()
    await a.publish("conv:2", b"both channels are back")
    await inbox.wait_for(1)


async def test_channels_added_while_disconnected_are_subscribed(
    redis_cluster: Cluster, admin: Redis
) -> None:
    a, b = await redis_cluster.node("node-a"), await redis_cluster.node("node-b")
    inbox = Inbox()
    subscription = await b.subscribe(inbox, ["conv:1"])
    await kill_pubsub(admin, b, redis_cluster.namespace)
    await subscription.add(["conv:2"])
    await subscription.remove(["conv:1"])
    await publish_until_received(a, inbox, "conv:2")
    await a.publish("conv:1", b"removed")
    await a.publish("conv:2", b"kept")
    await asyncio.sleep(0.1)
    assert {channel for channel, _ in inbox.received} == {"conv:2"}


async def test_namespaces_are_isolated(redis_cluster: Cluster) -> None:
    here = await redis_cluster.node("node-a")
    other = RedisBroker(REDIS_URL, node_id="node-a", namespace=redis_cluster.namespace + "-2")
    await other.start()
    try:
        inbox = Inbox()
        await here.subscribe(inbox, ["conv:1"])
        await other.publish("conv:1", b"other cluster")
        await other.set_presence(1, PresenceStatus.ONLINE, 10)
        await other.node_heartbeat(10)
        assert await other.count_hit("k", 10) == 1
        await here.publish("conv:1", b"this cluster")
        await inbox.wait_for(1)
        assert inbox.payloads == [b"this cluster"]
        assert await here.get_presence([1]) == {1: PresenceStatus.OFFLINE}
        assert await here.live_nodes() == set()
        assert await here.count_hit("k", 10) == 1
    finally:
        await other.close()
        await delete_namespace(redis_cluster.namespace + "-2")


async def test_keys_carry_the_namespace(redis_cluster: Cluster, admin: Redis) -> None:
    broker = await redis_cluster.node("node-a")
    await broker.node_heartbeat(10)
    await broker.set_presence(1, PresenceStatus.ONLINE, 10)
    await broker.take_token("t", 3, 1)
    await broker.count_hit("c", 10)
    await broker.reserve_hit("r", 3, 10)
    await broker.incr_connections("n", 1, 10)
    ns = redis_cluster.namespace
    keys = {key.decode() async for key in admin.scan_iter(match=f"{ns}:*")}
    assert keys == {
        f"{ns}:nodes",
        f"{ns}:presence:1",
        f"{ns}:bucket:t",
        f"{ns}:count:c",
        f"{ns}:count:r",
        f"{ns}:window:r",
        f"{ns}:conn:n",
    }
    for key in keys:
        assert await admin.pttl(key) > 0, f"{key} never expires"


async def test_close_removes_this_nodes_entries(redis_cluster: Cluster, admin: Redis) -> None:
    broker = await redis_cluster.node("node-a")
    await broker.node_heartbeat(10)
    await broker.set_presence(1, PresenceStatus.ONLINE, 10)
    await broker.close()
    ns = redis_cluster.namespace
    assert await admin.hlen(f"{ns}:presence:1") == 0
    assert await admin.zscore(f"{ns}:nodes", "node-a") is None


async def test_heartbeat_restores_presence_lost_by_redis(
    redis_cluster: Cluster, admin: Redis
) -> None:
    broker = await redis_cluster.node("node-a")
    await broker.set_presence(1, PresenceStatus.AWAY, 10)
    await admin.delete(f"{redis_cluster.namespace}:presence:1")  # as a restart would
    assert await broker.get_presence([1]) == {1: PresenceStatus.OFFLINE}
    await broker.node_heartbeat(10)
    assert await broker.get_presence([1]) == {1: PresenceStatus.AWAY}


async def test_unreachable_redis_raises_broker_unavailable() -> None:
    broker = RedisBroker(UNREACHABLE_URL, namespace="palaver-test-unreachable")
    try:
        with pytest.raises(BrokerUnavailable):
            await broker.start()
        with pytest.raises(BrokerUnavailable):
            await broker.publish("conv:1", b"x")
        with pytest.raises(BrokerUnavailable):
            await broker.take_token("k", 1, 1)
        with pytest.raises(BrokerUnavailable):
            await broker.ping()
    finally:
        await broker.close()


async def test_empty_namespace_is_refused() -> None:
    with pytest.raises(ValueError, match="namespace"):
        RedisBroker(REDIS_URL, namespace="")


@pytest.fixture
async def proxy() -> AsyncIterator[TcpProxy]:
    require("Redis", REDIS_URL)
    target = urlsplit(REDIS_URL)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


async def test_outage_and_recovery(proxy: TcpProxy) -> None:
    url = urlunsplit(urlsplit(REDIS_URL)._replace(netloc=f"127.0.0.1:{proxy.port}"))
    namespace = f"palaver-test-{secrets.token_hex(6)}"
    a = RedisBroker(url, node_id="node-a", namespace=namespace)
    b = RedisBroker(url, node_id="node-b", namespace=namespace)
    await a.start()
    await b.start()
    try:
        inbox = Inbox()
        subscription = await b.subscribe(inbox, ["conv:1"])
        await a.publish("conv:1", b"before")
        await inbox.wait_for(1)

        await proxy.stop()
        with pytest.raises(BrokerUnavailable):
            await a.publish("conv:1", b"during")
        with pytest.raises(BrokerUnavailable):
            await b.ping()
        await subscription.add(["conv:2"])  # recorded, not raised
        await asyncio.sleep(0.3)  # let the reader fail to reconnect a few times

        await proxy.start()
        inbox.received.clear()
        await publish_until_received(a, inbox, "conv:2")
        inbox.received.clear()
        await a.publish("conv:1", b"after")
        await inbox.wait_for(1)
        await b.ping()
    finally:
        await a.close()
        await b.close()
        await delete_namespace(namespace)


async def test_a_silent_connection_is_detected_and_replaced(
    proxy: TcpProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_broker, "_POLL", 0.05)
    monkeypatch.setattr(redis_broker, "_PING_AFTER", 0.2)
    monkeypatch.setattr(redis_broker, "_PONG_TIMEOUT", 0.2)
    monkeypatch.setattr(redis_broker, "_SOCKET_TIMEOUT", 0.5)
    url = urlunsplit(urlsplit(REDIS_URL)._replace(netloc=f"127.0.0.1:{proxy.port}"))
    namespace = f"palaver-test-{secrets.token_hex(6)}"
    a = RedisBroker(REDIS_URL, node_id="node-a", namespace=namespace)
    b = RedisBroker(url, node_id="node-b", namespace=namespace)
    await a.start()
    await b.start()
    try:
        inbox = Inbox()
        await b.subscribe(inbox, ["conv:1"])
        with capture_logs() as logs:
            proxy.blackhole = True
            async with asyncio.timeout(3):
                while not any(e["event"] == "broker pub/sub connection lost" for e in logs):
                    await asyncio.sleep(0.05)
            proxy.blackhole = False
            await publish_until_received(a, inbox, "conv:1")
    finally:
        await a.close()
        await b.close()
        await delete_namespace(namespace)
