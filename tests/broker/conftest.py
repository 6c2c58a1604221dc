"""Fixtures for the broker contract suite: every test runs in memory and on Redis.

``broker`` is one started node; ``broker_pair`` is two nodes sharing one backend (one
MemoryHub, or one Redis namespace). ``advance`` moves time forward: a fake clock in
memory, real sleeping on Redis (whose TTLs follow its own clock), so test bodies are
the same for both. ``Inbox`` collects publications and waits for them.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from palaver.broker.base import Broker
from palaver.broker.memory import MemoryBroker, MemoryHub
from palaver.broker.redis import RedisBroker
from tests.services import REDIS_URL, delete_namespace, require

# Long enough for a loaded CI machine to deliver over Redis, short enough that a
# missing delivery fails the test quickly.
DELIVERY_TIMEOUT = 3.0


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Cluster:
    """Builds started brokers ("nodes") that share one backend."""

    kind: str
    namespace: str
    clock: FakeClock = field(default_factory=FakeClock)
    brokers: list[Broker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.hub = MemoryHub(clock=self.clock)

    def new(self, node_id: str | None = None) -> Broker:
        """A broker on this cluster's backend, not started."""
        broker: Broker
        if self.kind == "memory":
            broker = MemoryBroker(node_id, hub=self.hub)
        else:
            broker = RedisBroker(REDIS_URL, node_id=node_id, namespace=self.namespace)
        self.brokers.append(broker)
        return broker

    async def node(self, node_id: str | None = None) -> Broker:
        """A started broker on this cluster's backend."""
        broker = self.new(node_id)
        await broker.start()
        return broker

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for TTLs and buckets."""
        if self.kind == "memory":
            self.clock.advance(seconds)
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(seconds)

    async def close(self) -> None:
        for broker in self.brokers:
            await broker.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    kind: str = request.param
    if kind == "redis":
        require("Redis", REDIS_URL)
    namespace = f"palaver-test-{secrets.token_hex(6)}"
    cluster = Cluster(kind, namespace)
    try:
        yield cluster
    finally:
        await cluster.close()
        if kind == "redis":
            await delete_namespace(namespace)


@pytest.fixture
async def broker(cluster: Cluster) -> Broker:
    return await cluster.node("node-a")


@pytest.fixture
async def broker_pair(cluster: Cluster) -> tuple[Broker, Broker]:
    return await cluster.node("node-a"), await cluster.node("node-b")


@pytest.fixture
def advance(cluster: Cluster) -> Callable[[float], Awaitable[None]]:
    return cluster.advance


class Inbox:
    """A handler that records ``(channel, payload)`` and lets tests wait for them."""

    def __init__(self, name: str = "inbox") -> None:
        self.name = name
        self.received: list[tuple[str, bytes]] = []
        self._changed = asyncio.Event()

    def __call__(self, channel: str, payload: bytes) -> None:
        self.received.append((channel, payload))
        self._changed.set()

    @property
    def payloads(self) -> list[bytes]:
        return [payload for _, payload in self.received]

    async def wait_for(self, count: int, timeout: float = DELIVERY_TIMEOUT) -> None:
        """Wait until at least ``count`` publications have arrived."""
        async with asyncio.timeout(timeout):
            while len(self.received) < count:
                self._changed.clear()
                await self._changed.wait()


async def settle(publisher: Broker, subscriber: Broker) -> None:
    """Wait until ``subscriber`` has received everything ``publisher`` sent so far.

    Redis delivers one connection's publications in order, so once a marker published
    afterwards has arrived, anything still missing was not going to be delivered.
    """
    marker = Inbox("marker")
    channel = f"settle-{secrets.token_hex(4)}"
    subscription = await subscriber.subscribe(marker, [channel])
    try:
        await publisher.publish(channel, b"marker")
        await marker.wait_for(1)
    finally:
        await subscription.close()
