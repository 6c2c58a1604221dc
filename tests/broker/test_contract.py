"""The broker contract: what every Broker implementation must do (see broker/base.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from structlog.testing import capture_logs

from palaver.broker.base import Broker, BrokerUnavailable, Handler, PresenceStatus, Reservation
from palaver.broker.memory import MemoryBroker
from tests.broker.conftest import Cluster, Inbox, settle

Advance = Callable[[float], Awaitable[None]]

ONLINE, AWAY, OFFLINE = PresenceStatus.ONLINE, PresenceStatus.AWAY, PresenceStatus.OFFLINE


# -- publish / subscribe -----------------------------------------------------------------


async def test_publish_reaches_subscriber_on_the_same_node(broker: Broker) -> None:
    inbox = Inbox()
    await broker.subscribe(inbox, ["conv:1"])
    await broker.publish("conv:1", b"hello")
    await inbox.wait_for(1)
    assert inbox.received == [("conv:1", b"hello")]


async def test_publish_reaches_every_node(broker_pair: tuple[Broker, Broker]) -> None:
    a, b = broker_pair
    on_a, on_b = Inbox("a"), Inbox("b")
    await a.subscribe(on_a, ["conv:1"])
    await b.subscribe(on_b, ["conv:1"])
    await a.publish("conv:1", b"one")
    await b.publish("conv:1", b"two")
    await on_a.wait_for(2)
    await on_b.wait_for(2)
    assert sorted(on_a.payloads) == sorted(on_b.payloads) == [b"one", b"two"]


async def test_publications_keep_their_order(broker_pair: tuple[Broker, Broker]) -> None:
    a, b = broker_pair
    inbox = Inbox()
    await b.subscribe(inbox, ["conv:1"])
    payloads = [str(n).encode() for n in range(50)]
    for payload in payloads:
        await a.publish("conv:1", payload)
    await inbox.wait_for(len(payloads))
    assert inbox.payloads == payloads


async def test_payloads_are_opaque_bytes(broker_pair: tuple[Broker, Broker]) -> None:
    a, b = broker_pair
    inbox = Inbox()
    await b.subscribe(inbox, ["bin"])
    blobs = [b"", b"\x00\xff\xfe", "héllo ✓".encode(), b"x" * 65_536]
    for blob in blobs:
        await a.publish("bin", blob)
    await inbox.wait_for(len(blobs))
    assert inbox.payloads == blobs


async def test_only_subscribed_channels_arrive(broker_pair: tuple[Broker, Broker]) -> None:
    a, b = broker_pair
    inbox = Inbox()
    await b.subscribe(inbox, ["conv:1", "conv:2"])
    await a.publish("conv:3", b"not mine")
    await a.publish("conv:2", b"mine")
    await settle(a, b)
    assert inbox.received == [("conv:2", b"mine")]


async def test_add_and_remove_channels(broker_pair: tuple[Broker, Broker]) -> None:
    a, b = broker_pair
    inbox = Inbox()
    subscription = await b.subscribe(inbox)
    await a.publish("conv:1", b"before")
    await subscription.add(["conv:1", "conv:2"])
    await subscription.add(["conv:1"])  # idempotent: still delivered once
    await a.publish("conv:1", b"one")
    await a.publish("conv:2", b"two")
    await settle(a, b)
    assert inbox.payloads == [b"one", b"two"]

    await subscription.remove(["conv:1", "conv:9"])
    await subscription.remove(["conv:1"])  # idempotent
    await a.publish("conv:1", b"removed")
    await a.publish("conv:2", b"kept")
    await settle(a, b)
    assert inbox.payloads == [b"one", b"two", b"kept"]


async def test_closed_subscription_receives_nothing(broker_pair: tuple[Broker, Broker]) -> None:
    a, b = broker_pair
    closed, open_ = Inbox("closed"), Inbox("open")
    subscription = await b.subscribe(closed, ["conv:1"])
    await b.subscribe(open_, ["conv:1"])
    await subscription.close()
    await a.publish("conv:1", b"after close")
    await open_.wait_for(1)
    await settle(a, b)
    assert closed.received == []
    assert open_.payloads == [b"after close"]


async def test_removing_one_subscription_keeps_the_others(broker: Broker) -> None:
    first, second = Inbox("first"), Inbox("second")
    sub1 = await broker.subscribe(first, ["conv:1"])
    await broker.subscribe(second, ["conv:1"])
    await sub1.remove(["conv:1"])
    await broker.publish("conv:1", b"x")
    await second.wait_for(1)
    await settle(broker, broker)
    assert first.received == []


async def test_handlers_run_in_subscription_order(broker_pair: tuple[Broker, Broker]) -> None:
    a, b = broker_pair
    calls: list[str] = []

    def recorder(name: str) -> Handler:
        return lambda channel, payload: calls.append(name)

    for name in ("first", "second", "third"):
        await b.subscribe(recorder(name), ["conv:1"])
    await a.publish("conv:1", b"x")
    await settle(a, b)
    assert calls == ["first", "second", "third"]


async def test_a_failing_handler_does_not_stop_the_others(
    broker_pair: tuple[Broker, Broker],
) -> None:
    a, b = broker_pair

    def explode(channel: str, payload: bytes) -> None:
        raise RuntimeError("handler bug")

    before, after = Inbox("before"), Inbox("after")
    await b.subscribe(before, ["conv:1"])
    await b.subscribe(explode, ["conv:1"])
    await b.subscribe(after, ["conv:1"])
    with capture_logs() as logs:
        await a.publish("conv:1", b"one")
        await a.publish("conv:1", b"two")
        await after.wait_for(2)
    assert before.payloads == after.payloads == [b"one", b"two"]
    failures = [entry for entry in logs if entry["event"] == "broker handler failed"]
    assert len(failures) == 2
    assert failures[0]["channel"] == "conv:1"


# -- liveness and presence ---------------------------------------------------------------


async def test_ping(broker: Broker) -> None:
    await broker.ping()


async def test_ping_after_close_fails(cluster: Cluster) -> None:
    broker = await cluster.node()
    await broker.close()
    with pytest.raises(BrokerUnavailable):
        await broker.ping()


async def test_node_ids_are_random_by_default(cluster: Cluster) -> None:
    first, second = cluster.new(), cluster.new()
    assert first.node_id
    assert second.node_id
    assert first.node_id != second.node_id
    assert cluster.new("chosen").node_id == "chosen"


async def test_live_nodes(broker_pair: tuple[Broker, Broker]) -> None:
    a, b = broker_pair
    assert await a.live_nodes() == set()
    await a.node_heartbeat(10)
    await b.node_heartbeat(10)
    assert await a.live_nodes() == await b.live_nodes() == {"node-a", "node-b"}
    await b.close()
    assert await a.live_nodes() == {"node-a"}


async def test_presence_aggregates_across_nodes(broker_pair: tuple[Broker, Broker]) -> None:
    a, b = broker_pair
    assert await a.get_presence([]) == {}
    assert await a.get_presence([1, 2]) == {1: OFFLINE, 2: OFFLINE}

    await a.set_presence(1, AWAY, 10)
    await b.set_presence(1, ONLINE, 10)
    await b.set_presence(2, AWAY, 10)
    assert await a.get_presence([1, 2, 3]) == {1: ONLINE, 2: AWAY, 3: OFFLINE}

    await b.set_presence(1, OFFLINE, 10)  # away elsewhere beats offline here
    assert await b.get_presence([1]) == {1: AWAY}
    await a.set_presence(1, ONLINE, 10)
    await b.set_presence(1, AWAY, 10)  # online elsewhere beats away here
    assert await b.get_presence([1]) == {1: ONLINE}
    await a.set_presence(1, OFFLINE, 10)
    await b.set_presence(1, OFFLINE, 10)
    assert await a.get_presence([1]) == {1: OFFLINE}


async def test_presence_status_is_replaced_by_the_same_node(broker: Broker) -> None:
    await broker.set_presence(1, ONLINE, 10)
    await broker.set_presence(1, AWAY, 10)
    assert await broker.get_presence([1]) == {1: AWAY}


async def test_presence_expires_with_its_ttl(broker: Broker, advance: Advance) -> None:
    await broker.set_presence(1, ONLINE, 0.3)
    await broker.set_presence(2, ONLINE, 10)
    await advance(0.4)
    assert await broker.get_presence([1, 2]) == {1: OFFLINE, 2: ONLINE}


async def test_a_node_that_stops_heartbeating_stops_counting(
    broker_pair: tuple[Broker, Broker], advance: Advance
) -> None:
    a, b = broker_pair
    await a.node_heartbeat(0.5)
    await b.node_heartbeat(0.5)
    await a.set_presence(1, ONLINE, 0.5)
    await b.set_presence(2, AWAY, 0.5)
    await b.set_presence(3, AWAY, 0.5)
    await a.set_presence(3, ONLINE, 0.5)
    await advance(0.3)
    await b.node_heartbeat(0.5)  # a has died: only b keeps heartbeating
    await advance(0.3)
    assert await b.live_nodes() == {"node-b"}
    assert await b.get_presence([1, 2, 3]) == {1: OFFLINE, 2: AWAY, 3: AWAY}


async def test_heartbeats_keep_presence_alive(broker: Broker, advance: Advance) -> None:
    await broker.node_heartbeat(0.3)
    await broker.set_presence(1, ONLINE, 0.3)
    for _ in range(3):
        await advance(0.15)
        await broker.node_heartbeat(0.3)
    assert await broker.get_presence([1]) == {1: ONLINE}
    assert await broker.live_nodes() == {"node-a"}


async def test_closing_a_node_drops_its_presence(broker_pair: tuple[Broker, Broker]) -> None:
    a, b = broker_pair
    await a.set_presence(1, ONLINE, 10)
    await a.set_presence(2, AWAY, 10)
    await b.set_presence(2, ONLINE, 10)
    await a.close()
    assert await b.get_presence([1, 2]) == {1: OFFLINE, 2: ONLINE}


# -- shared counters ---------------------------------------------------------------------


async def test_token_bucket_burst_is_shared_by_nodes(broker_pair: tuple[Broker, Broker]) -> None:
    a, b = broker_pair
    # A slow refill, so the few milliseconds this test takes add no token.
    waits = [await node.take_token("send:7", 5, 0.01) for node in (a, b) * 5]
    assert waits[:5] == [0.0] * 5
    assert all(0 < wait <= 100 for wait in waits[5:])
    assert await a.take_token("send:8", 5, 0.01) == 0.0  # buckets are per key


async def test_token_bucket_refills(broker: Broker, advance: Advance) -> None:
    assert await broker.take_token("k", 1, 10) == 0.0
    wait = await broker.take_token("k", 1, 10)
    assert 0.05 < wait <= 0.1
    await advance(wait)
    assert await broker.take_token("k", 1, 10) == 0.0


async def test_taking_a_token_now_shares_the_bucket_or_declines(
    broker_pair: tuple[Broker, Broker],
) -> None:
    a, b = broker_pair
    first = a.take_token_now("now:1", 2, 0.01)
    if isinstance(a, MemoryBroker):
        assert first == 0.0  # an in-process bucket always answers at once
    if first is None:
        # Declined: nothing was taken, the whole burst is still there.
        assert [await b.take_token("now:1", 2, 0.01) for _ in range(2)] == [0.0, 0.0]
    else:
        assert first == 0.0
        assert await b.take_token("now:1", 2, 0.01) == 0.0
        second = a.take_token_now("now:1", 2, 0.01)
        assert second is not None
        assert 0 < second <= 100
    assert await b.take_token("now:1", 2, 0.01) > 0


async def test_token_bucket_refuses_bad_limits(broker: Broker) -> None:
    with pytest.raises(ValueError, match="burst"):
        await broker.take_token("k", 0, 1)
    with pytest.raises(ValueError, match="per_second"):
        await broker.take_token("k", 1, 0)


async def test_count_hit_counts_within_a_window(
    broker_pair: tuple[Broker, Broker], advance: Advance
) -> None:
    a, b = broker_pair
    assert await a.get_count("login:x") == 0
    assert [await node.count_hit("login:x", 0.3) for node in (a, b, a)] == [1, 2, 3]
    assert await b.get_count("login:x") == 3
    assert await a.count_hit("login:y", 0.3) == 1  # counters are per key
    await advance(0.4)
    assert await a.get_count("login:x") == 0
    assert await b.count_hit("login:x", 0.3) == 1


async def test_window_starts_at_the_first_hit(broker: Broker, advance: Advance) -> None:
    assert await broker.count_hit("k", 0.4) == 1
    await advance(0.25)
    assert await broker.count_hit("k", 0.4) == 2  # does not extend the window
    await advance(0.25)
    assert await broker.count_hit("k", 0.4) == 1


async def test_reset_count(broker_pair: tuple[Broker, Broker]) -> None:
    a, b = broker_pair
    await a.count_hit("login:x", 60)
    await a.count_hit("login:x", 60)
    await a.count_hit("login:y", 60)
    await b.reset_count("login:x")
    await b.reset_count("login:never")
    assert await a.get_count("login:x") == 0
    assert await a.get_count("login:y") == 1
    assert await a.count_hit("login:x", 60) == 1


async def test_reserve_hit_never_counts_past_the_limit(
    broker_pair: tuple[Broker, Broker], advance: Advance
) -> None:
    a, b = broker_pair
    # However many callers race, on any node, five get a place in the window.
    reservations = await asyncio.gather(
        *(node.reserve_hit("login:x", 5, 0.5) for node in (a, b) * 10)
    )
    counted = [r for r in reservations if r.window is not None]
    assert len(counted) == 5
    assert all(r.wait == 0.0 for r in counted)
    assert len({r.window for r in counted}) == 1  # one window, one name
    assert all(r.key == "login:x" for r in reservations)
    assert all(0 < r.wait <= 0.5 for r in reservations if r.window is None)
    assert await b.get_count("login:x") == 5  # refusals count nothing
    assert (await a.reserve_hit("login:y", 5, 0.5)).window is not None  # counters are per key
    # A reservation taken back frees its place.
    await b.release_hit(counted[0])
    assert await a.get_count("login:x") == 4
    assert (await a.reserve_hit("login:x", 5, 0.5)).window is not None
    assert (await b.reserve_hit("login:x", 5, 0.5)).wait > 0
    await advance(0.6)
    assert (await b.reserve_hit("login:x", 5, 0.5)).window is not None
    assert await a.get_count("login:x") == 1
    with pytest.raises(ValueError, match="limit"):
        await a.reserve_hit("login:x", 0, 0.5)


async def test_release_hit(broker_pair: tuple[Broker, Broker], advance: Advance) -> None:
    a, b = broker_pair
    await a.release_hit(Reservation("login:never", "w"))  # nothing to take back
    assert await b.get_count("login:never") == 0
    first = await a.reserve_hit("k", 3, 0.4)
    assert first.window is not None
    await advance(0.25)
    # Back to zero: forgotten, so the next reservation opens a window of its own.
    await b.release_hit(first)
    assert await a.get_count("k") == 0
    second = await a.reserve_hit("k", 3, 0.4)
    assert second.window not in (None, first.window)
    await advance(0.25)
    assert await a.get_count("k") == 1
    await advance(0.2)
    # Once the window has ended there is nothing left to take back.
    await b.release_hit(second)
    assert await a.get_count("k") == 0
    assert (await a.reserve_hit("k", 1, 0.4)).window is not None
    # A refused reservation holds no place.
    refused = await b.reserve_hit("k", 1, 0.4)
    assert refused.window is None
    await b.release_hit(refused)
    assert await a.get_count("k") == 1


async def test_a_late_release_frees_no_place_in_a_later_window(
    broker_pair: tuple[Broker, Broker], advance: Advance
) -> None:
    a, b = broker_pair
    # The window ends while the first attempt is still being checked; another opens and
    # fills. The first attempt's place, given back late, is not in the open window.
    first = await a.reserve_hit("k", 1, 0.3)
    assert first.window is not None
    await advance(0.4)
    second = await b.reserve_hit("k", 1, 0.3)
    assert second.window not in (None, first.window)
    await a.release_hit(first)
    assert await b.get_count("k") == 1
    assert (await a.reserve_hit("k", 1, 0.3)).window is None
    # The same when the window was reset (a right password) rather than ended, at once.
    await b.reset_count("k")
    third = await b.reserve_hit("k", 1, 0.3)
    assert third.window not in (None, second.window)
    await a.release_hit(second)
    assert await b.get_count("k") == 1
    # A reservation still goes back to its own window.
    await a.release_hit(third)
    assert await b.get_count("k") == 0
    assert (await a.reserve_hit("k", 1, 0.3)).window is not None


async def test_incr_connections(broker_pair: tuple[Broker, Broker], advance: Advance) -> None:
    a, b = broker_pair
    assert await a.incr_connections("ip:1", 1, 10) == 1
    assert await b.incr_connections("ip:1", 1, 10) == 2
    assert await a.incr_connections("ip:1", -1, 10) == 1
    assert await a.incr_connections("ip:2", 3, 10) == 3
    assert await a.incr_connections("ip:3", 1, 0.3) == 1
    await advance(0.4)
    assert await b.incr_connections("ip:3", 1, 0.3) == 1  # expired: counts afresh
