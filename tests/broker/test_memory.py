"""MemoryBroker specifics beyond the contract: synchronous delivery, hubs, sweeping."""

from __future__ import annotations

import pytest

from palaver.broker.base import PresenceStatus
from palaver.broker.memory import MemoryBroker, MemoryHub
from tests.broker.conftest import FakeClock, Inbox


async def test_delivery_is_synchronous() -> None:
    broker = MemoryBroker()
    await broker.start()
    inbox = Inbox()
    await broker.subscribe(inbox, ["c"])
    await broker.publish("c", b"x")
    assert inbox.payloads == [b"x"]  # no await in between: delivered inside publish


async def test_private_hubs_do_not_share() -> None:
    first, second = MemoryBroker("n"), MemoryBroker("n")
    await first.start()
    await second.start()
    inbox = Inbox()
    await second.subscribe(inbox, ["c"])
    await first.publish("c", b"x")
    await first.set_presence(1, PresenceStatus.ONLINE, 10)
    assert inbox.received == []
    assert await second.get_presence([1]) == {1: PresenceStatus.OFFLINE}


async def test_node_ids_are_unique_on_a_hub() -> None:
    hub = MemoryHub()
    await MemoryBroker("n", hub=hub).start()
    with pytest.raises(ValueError, match="already on this hub"):
        await MemoryBroker("n", hub=hub).start()


def test_clock_belongs_to_a_shared_hub() -> None:
    with pytest.raises(ValueError, match="MemoryHub"):
        MemoryBroker(hub=MemoryHub(), clock=FakeClock())


async def test_private_hub_uses_the_given_clock() -> None:
    clock = FakeClock()
    broker = MemoryBroker(clock=clock)
    await broker.set_presence(1, PresenceStatus.ONLINE, 5)
    clock.advance(5)
    assert await broker.get_presence([1]) == {1: PresenceStatus.OFFLINE}


async def test_changed_bucket_limits_keep_the_level() -> None:
    broker = MemoryBroker(clock=FakeClock())
    for _ in range(3):
        assert await broker.take_token("k", 3, 1) == 0.0
    assert await broker.take_token("k", 10, 1) == pytest.approx(1.0)  # still empty
    assert await broker.take_token("k", 10, 4) == pytest.approx(0.25)


async def test_expired_state_is_swept() -> None:
    clock = FakeClock()
    hub = MemoryHub(clock)
    broker = MemoryBroker("n", hub=hub)
    await broker.start()
    await broker.node_heartbeat(1)
    await broker.set_presence(1, PresenceStatus.ONLINE, 1)
    await broker.set_presence(2, PresenceStatus.AWAY, 1000)
    await broker.take_token("bucket", 2, 1)
    await broker.count_hit("window", 1)
    await broker.incr_connections("gauge", 1, 1)
    clock.advance(61)
    await broker.ping()
    assert await broker.get_presence([2]) == {2: PresenceStatus.AWAY}  # sweeps on the way
    assert hub._heartbeats == {}
    assert set(hub._presence) == {2}
    assert hub._node_users == {"n": {2}}
    assert hub._buckets == {}
    assert hub._windows == {}
    assert hub._gauges == {}
