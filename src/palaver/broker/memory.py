"""The in-process broker: one process is the whole cluster.

:class:`MemoryBroker` keeps everything in a :class:`MemoryHub`. Each broker gets a
private hub by default; brokers built on one shared hub behave like nodes sharing one
Redis, which is how the contract suite runs its two-node tests in memory.

:class:`ChannelRouter` (one node's channel table, in-order delivery with isolated
handler failures) is also what :class:`~palaver.broker.redis.RedisBroker` fans out with.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass

import structlog

from palaver.broker.base import (
    Broker,
    BrokerUnavailable,
    Handler,
    PresenceStatus,
    Reservation,
    Subscription,
)
from palaver.core.ratelimit import FixedWindow, TokenBucket, check_bucket_params

log = structlog.get_logger(__name__)

Clock = Callable[[], float]
"""Seconds on a clock that never steps back (``time.monotonic`` by default)."""

# Expired presence, buckets and counters are ignored on read and swept away this
# often, so a long-running single-node server does not keep every IP it ever saw.
_SWEEP_INTERVAL = 60.0

_RANK = {PresenceStatus.ONLINE: 2, PresenceStatus.AWAY: 1, PresenceStatus.OFFLINE: 0}


def new_node_id() -> str:
    """A random node id, unique enough for a cluster's lifetime."""
    return secrets.token_hex(8)


class ChannelRouter:
    """One node's table of which handlers want which channel.

    ``key`` identifies one subscription (any hashable); a key's handler is called at most
    once per publication. Handlers of a channel run in the order they started receiving
    it; one that raises is logged and the others still run.
    """

    def __init__(self) -> None:
        self._routes: dict[str, dict[Hashable, Handler]] = {}
        self._by_key: dict[Hashable, set[str]] = {}

    @property
    def channels(self) -> list[str]:
        """The channels at least one subscription wants."""
        return list(self._routes)

    def add(self, key: Hashable, handler: Handler, channels: Iterable[str]) -> list[str]:
        """Route ``channels`` to ``handler`` too; return those nobody wanted before."""
        mine = self._by_key.setdefault(key, set())
        fresh = []
        for channel in channels:
            if channel in mine:
                continue
            mine.add(channel)
            handlers = self._routes.get(channel)
            if handlers is None:
                handlers = self._routes[channel] = {}
                fresh.append(channel)
            handlers[key] = handler
        return fresh

    def remove(self, key: Hashable, channels: Iterable[str]) -> list[str]:
        """Stop routing ``channels`` to ``key``; return those nobody wants any more."""
        mine = self._by_key.get(key)
        if not mine:
            return []
        gone = []
        for channel in channels:
            if channel not in mine:
                continue
            mine.discard(channel)
            handlers = self._routes[channel]
            del handlers[key]
            if not handlers:
                del self._routes[channel]
                gone.append(channel)
        return gone

    def drop(self, key: Hashable) -> list[str]:
        """Forget ``key`` entirely; return the channels nobody wants any more."""
        gone = self.remove(key, list(self._by_key.get(key, ())))
        self._by_key.pop(key, None)
        return gone

    def deliver(self, channel: str, payload: bytes) -> int:
        """Call every handler of ``channel``; return how many were called."""
        handlers = self._routes.get(channel)
        if not handlers:
            return 0
        # A handler may subscribe or unsubscribe (through a task it schedules, or a
        # test double doing it inline), so iterate over a snapshot.
        snapshot = tuple(handlers.values())
        for handler in snapshot:
            try:
                handler(channel, payload)
            except Exception:
                log.exception("broker handler failed", channel=channel)
        return len(snapshot)


@dataclass
class _Presence:
    status: PresenceStatus
    expires: float


@dataclass
class _Gauge:
    value: int
    expires: float


@dataclass
class _NamedWindow(FixedWindow):
    """A counter's window with a name no other window on its hub has had, so a
    reservation can tell the window it was counted in from one opened after it."""

    name: str = ""


class MemoryHub:
    """The state shared by the :class:`MemoryBroker` nodes built on it.

    Pass one hub to several brokers to simulate a cluster in one process; ``clock`` is
    the hub's time source (inject a fake one in tests). Its methods are the brokers'
    operations with the acting node made explicit.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self.clock = clock
        self._nodes: dict[str, ChannelRouter] = {}
        self._heartbeats: dict[str, float] = {}
        self._presence: dict[int, dict[str, _Presence]] = {}
        self._node_users: dict[str, set[int]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._windows: dict[str, _NamedWindow] = {}
        self._window_names = itertools.count(1)
        self._gauges: dict[str, _Gauge] = {}
        self._next_sweep: float | None = None

    def now(self) -> float:
        """The hub's clock, sweeping expired state when it is due."""
        now = self.clock()
        if self._next_sweep is None:
            self._next_sweep = now + _SWEEP_INTERVAL
        elif now >= self._next_sweep:
            self._sweep(now)
            self._next_sweep = now + _SWEEP_INTERVAL
        return now

    def _sweep(self, now: float) -> None:
        for node in [n for n, expires in self._heartbeats.items() if expires <= now]:
            del self._heartbeats[node]
        for user_id in list(self._presence):
            for node in [n for n, p in self._presence[user_id].items() if p.expires <= now]:
                self._drop_presence(user_id, node)
        for key in [k for k, b in self._buckets.items() if b.updated + b.idle_after() <= now]:
            del self._buckets[key]
        for key in [k for k, w in self._windows.items() if w.expired(now)]:
            del self._windows[key]
        for key in [k for k, g in self._gauges.items() if g.expires <= now]:
            del self._gauges[key]

    # -- nodes and publications --------------------------------------------------------

    def join(self, node_id: str, router: ChannelRouter) -> None:
        """Deliver publications to ``router`` as node ``node_id``."""
        if self._nodes.get(node_id, router) is not router:
            raise ValueError(f"node id {node_id!r} is already on this hub")
        self._nodes[node_id] = router

    def leave(self, node_id: str) -> None:
        """Forget node ``node_id``: its router, heartbeat and presence entries."""
        self._nodes.pop(node_id, None)
        self._heartbeats.pop(node_id, None)
        for user_id in list(self._node_users.get(node_id, ())):
            self._drop_presence(user_id, node_id)

    def publish(self, channel: str, payload: bytes) -> None:
        """Deliver to every joined node's subscribers, synchronously."""
        for router in list(self._nodes.values()):
            router.deliver(channel, payload)

    # -- liveness and presence -------------------------------------------------------

    def heartbeat(self, node_id: str, ttl: float) -> None:
        """Keep ``node_id`` and its presence entries alive for ``ttl`` seconds."""
        expires = self.now() + ttl
        self._heartbeats[node_id] = expires
        for user_id in self._node_users.get(node_id, ()):
            self._presence[user_id][node_id].expires = expires

    def live_nodes(self) -> set[str]:
        """Nodes whose heartbeat has not expired."""
        now = self.now()
        return {node for node, expires in self._heartbeats.items() if expires > now}

    def set_presence(self, node_id: str, user_id: int, status: PresenceStatus, ttl: float) -> None:
        """Record ``node_id``'s view of a user for ``ttl`` seconds."""
        if status is PresenceStatus.OFFLINE:
            self._drop_presence(user_id, node_id)
            return
        entry = _Presence(status, self.now() + ttl)
        self._presence.setdefault(user_id, {})[node_id] = entry
        self._node_users.setdefault(node_id, set()).add(user_id)

    def get_presence(self, user_ids: Iterable[int]) -> dict[int, PresenceStatus]:
        """The best unexpired status of each user across nodes."""
        now = self.now()
        result = {}
        for user_id in user_ids:
            best = PresenceStatus.OFFLINE
            for entry in self._presence.get(user_id, {}).values():
                if entry.expires > now and _RANK[entry.status] > _RANK[best]:
                    best = entry.status
            result[user_id] = best
        return result

    def _drop_presence(self, user_id: int, node_id: str) -> None:
        entries = self._presence.get(user_id)
        if entries is not None:
            entries.pop(node_id, None)
            if not entries:
                del self._presence[user_id]
        users = self._node_users.get(node_id)
        if users is not None:
            users.discard(user_id)
            if not users:
                del self._node_users[node_id]

    # -- shared counters ---------------------------------------------------------------

    def take_token(self, key: str, burst: int, per_second: float) -> float:
        """Take a token from bucket ``key`` (see :meth:`Broker.take_token`)."""
        check_bucket_params(burst, per_second)
        now = self.now()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket.full(burst, per_second, now)
        elif (bucket.burst, bucket.per_second) != (burst, per_second):
            # Limits changed (a config reload): keep the level, as the Redis script does.
            bucket = self._buckets[key] = TokenBucket(
                burst, per_second, min(bucket.tokens, float(burst)), bucket.updated
            )
        return bucket.take(now)

    def _window(self, key: str, window: float, now: float) -> _NamedWindow:
        """``key``'s open window, or a new one of ``window`` seconds."""
        counter = self._windows.get(key)
        # Like Redis's EXPIRE NX, an open window keeps the length it opened with.
        if counter is None or counter.expired(now):
            name = str(next(self._window_names))
            counter = self._windows[key] = _NamedWindow(window, name=name)
        return counter

    def count_hit(self, key: str, window: float) -> int:
        """Count a hit under ``key`` (see :meth:`Broker.count_hit`)."""
        now = self.now()
        return self._window(key, window, now).hit(now)

    def reserve_hit(self, key: str, limit: int, window: float) -> Reservation:
        """Count a hit under ``key`` if the limit allows (see :meth:`Broker.reserve_hit`)."""
        now = self.now()
        counter = self._window(key, window, now)
        wait = counter.reserve(now, limit)
        return Reservation(key, None, wait) if wait > 0 else Reservation(key, counter.name)

    def release_hit(self, reservation: Reservation) -> None:
        """Take back a reservation (see :meth:`Broker.release_hit`)."""
        counter = self._windows.get(reservation.key)
        if counter is None or counter.name != reservation.window:
            return
        counter.release(self.now())
        if counter.count <= 0:
            del self._windows[reservation.key]

    def get_count(self, key: str) -> int:
        """The count in ``key``'s open window, 0 when none is open."""
        counter = self._windows.get(key)
        return 0 if counter is None or counter.expired(self.now()) else counter.count

    def reset_count(self, key: str) -> None:
        """Forget the counter ``key``."""
        self._windows.pop(key, None)

    def incr_connections(self, key: str, delta: int, ttl: float) -> int:
        """Add to a gauge (see :meth:`Broker.incr_connections`)."""
        now = self.now()
        gauge = self._gauges.get(key)
        value = delta if gauge is None or gauge.expires <= now else gauge.value + delta
        self._gauges[key] = _Gauge(value, now + ttl)
        return value


class _MemorySubscription(Subscription):
    def __init__(self, router: ChannelRouter, handler: Handler) -> None:
        self._router = router
        self._handler = handler

    async def add(self, channels: Iterable[str]) -> None:
        self._router.add(self, self._handler, channels)

    async def remove(self, channels: Iterable[str]) -> None:
        self._router.remove(self, channels)

    async def close(self) -> None:
        self._router.drop(self)


class MemoryBroker(Broker):
    """A :class:`~palaver.broker.base.Broker` living in this process.

    ``hub`` shares state with other brokers (default: a private hub); ``clock`` sets the
    private hub's time source and cannot be combined with ``hub`` (give it to the hub).
    Publications are delivered synchronously, before :meth:`publish` returns.
    """

    def __init__(
        self,
        node_id: str | None = None,
        *,
        hub: MemoryHub | None = None,
        clock: Clock | None = None,
    ) -> None:
        if hub is not None and clock is not None:
            raise ValueError("pass clock to the shared MemoryHub, not to MemoryBroker")
        self.node_id = node_id or new_node_id()
        self.hub = hub if hub is not None else MemoryHub(clock or time.monotonic)
        self._router = ChannelRouter()
        self._closed = False

    async def start(self) -> None:
        self.hub.join(self.node_id, self._router)

    async def close(self) -> None:
        self.hub.leave(self.node_id)
        self._closed = True

    async def ping(self) -> None:
        if self._closed:
            raise BrokerUnavailable("the broker is closed")

    async def publish(self, channel: str, payload: bytes) -> None:
        self.hub.publish(channel, payload)

    async def subscribe(self, handler: Handler, channels: Iterable[str] = ()) -> Subscription:
        subscription = _MemorySubscription(self._router, handler)
        await subscription.add(channels)
        return subscription

    async def node_heartbeat(self, ttl: float) -> None:
        self.hub.heartbeat(self.node_id, ttl)

    async def live_nodes(self) -> set[str]:
        return self.hub.live_nodes()

    async def set_presence(self, user_id: int, status: PresenceStatus, ttl: float) -> None:
        self.hub.set_presence(self.node_id, user_id, status, ttl)

    async def get_presence(self, user_ids: Iterable[int]) -> dict[int, PresenceStatus]:
        return self.hub.get_presence(user_ids)

    async def take_token(self, key: str, burst: int, per_second: float) -> float:
        return self.hub.take_token(key, burst, per_second)

    def take_token_now(self, key: str, burst: int, per_second: float) -> float | None:
        return self.hub.take_token(key, burst, per_second)

    async def count_hit(self, key: str, window: float) -> int:
        return self.hub.count_hit(key, window)

    async def reserve_hit(self, key: str, limit: int, window: float) -> Reservation:
        return self.hub.reserve_hit(key, limit, window)

    async def release_hit(self, reservation: Reservation) -> None:
        self.hub.release_hit(reservation)

    async def get_count(self, key: str) -> int:
        return self.hub.get_count(key)

    async def reset_count(self, key: str) -> None:
        self.hub.reset_count(key)

    async def incr_connections(self, key: str, delta: int, ttl: float) -> int:
        return self.hub.incr_connections(key, delta, ttl)
