"""The broker interface: wakes up nodes, shares short-lived state between them.

Nothing that must survive goes through the broker. Messages are committed to the store
first; a broker publication only tells nodes "conversation 7 reached sequence 42" (or
"close user 3's sockets"), and a node that misses one catches up from the store.

Every implementation passes ``tests/broker`` (the contract suite).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

Handler = Callable[[str, bytes], None]
"""Called with ``(channel, payload)`` for each publication on a subscribed channel.

Handlers run on the event loop and must not block; they may schedule tasks."""


class BrokerUnavailable(Exception):
    """The broker could not be reached."""


class PresenceStatus(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Reservation:
    """The answer of :meth:`Broker.reserve_hit` for counter ``key``.

    ``window`` names the window the hit was counted in, ``None`` when it was refused;
    ``wait`` is then the seconds until the full window ends (else 0.0). Give a counted
    reservation to :meth:`Broker.release_hit` to take it back."""

    key: str
    window: str | None
    wait: float = 0.0


class Subscription(abc.ABC):
    """A handle on one handler's interest in a set of channels."""

    @abc.abstractmethod
    async def add(self, channels: Iterable[str]) -> None:
        """Start receiving these channels too (idempotent)."""

    @abc.abstractmethod
    async def remove(self, channels: Iterable[str]) -> None:
        """Stop receiving these channels (idempotent)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop receiving anything."""


class Broker(abc.ABC):
    """Publish/subscribe between nodes, node liveness, user presence and counters.

    Any method may raise :class:`BrokerUnavailable` when the broker cannot be reached,
    except the subscription methods: those keep the interest and it takes effect once
    the broker is reachable again (publications in between are lost).
    """

    node_id: str

    @abc.abstractmethod
    async def start(self) -> None:
        """Connect. Call once before any other method."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Disconnect and drop this node's presence entries."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise :class:`BrokerUnavailable` when the broker cannot be reached."""

    # -- publish / subscribe -------------------------------------------------------

    @abc.abstractmethod
    async def publish(self, channel: str, payload: bytes) -> None:
        """Deliver ``payload`` to every subscriber of ``channel`` on every node,
        this one included. At most once: a subscriber may miss it."""

    @abc.abstractmethod
    async def subscribe(self, handler: Handler, channels: Iterable[str] = ()) -> Subscription:
        """Register ``handler`` for ``channels`` (more can be added later)."""

    # -- liveness and presence -------------------------------------------------------

    @abc.abstractmethod
    async def node_heartbeat(self, ttl: float) -> None:
        """Mark this node alive for ``ttl`` seconds and refresh its presence entries,
        so a node that dies stops counting (and its users go offline) within ``ttl``."""

    @abc.abstractmethod
    async def live_nodes(self) -> set[str]:
        """The ids of nodes whose heartbeat has not expired."""

    @abc.abstractmethod
    async def set_presence(self, user_id: int, status: PresenceStatus, ttl: float) -> None:
        """Record this node's view of a user for ``ttl`` seconds (``OFFLINE`` removes
        it). Each ``node_heartbeat(ttl)`` resets all of this node's entries to expire
        ``ttl`` seconds later, so pass the heartbeat's ttl here too."""

    @abc.abstractmethod
    async def get_presence(self, user_ids: Iterable[int]) -> dict[int, PresenceStatus]:
        """Each user's presence across live nodes: online if online anywhere, else away
        if away anywhere, else offline."""

    # -- shared counters (rate limits) ---------------------------------------------

    @abc.abstractmethod
    async def take_token(self, key: str, burst: int, per_second: float) -> float:
        """Token bucket shared by all nodes: take one token from bucket ``key``.
        Return 0.0 when allowed, else the seconds until a token is available."""

    def take_token_now(self, key: str, burst: int, per_second: float) -> float | None:
        """:meth:`take_token` without waiting, for a broker that holds its buckets in
        this process; ``None`` (no token taken) when the answer needs I/O."""
        return None

    @abc.abstractmethod
    async def count_hit(self, key: str, window: float) -> int:
        """Count one event under ``key`` in a window of ``window`` seconds that starts
        at the first hit; return the count including this one."""

    @abc.abstractmethod
    async def reserve_hit(self, key: str, limit: int, window: float) -> Reservation:
        """Count one event under ``key`` (as :meth:`count_hit`) only if fewer than
        ``limit`` are counted in its window, atomically across nodes: the reservation
        names the window it was counted in, or has none and the seconds until the window
        ends (nothing is counted then). So however many callers race, at most ``limit``
        of them are counted in one window, as login throttling needs to bound the
        password checks. ``limit`` is at least 1 (else :class:`ValueError`)."""

    @abc.abstractmethod
    async def release_hit(self, reservation: Reservation) -> None:
        """Take back a reservation that did not count in the end, from the window it was
        counted in. Nothing when that window has ended (or was reset), even if another
        has opened since: a late release never frees a place it did not take. Nothing
        for a refused reservation. A counter taken back to zero is forgotten, so the
        next hit opens a new window."""

    @abc.abstractmethod
    async def get_count(self, key: str) -> int:
        """The current value of counter ``key`` (0 when absent or its window ended),
        without counting a hit."""

    @abc.abstractmethod
    async def reset_count(self, key: str) -> None:
        """Forget the counter ``key``."""

    @abc.abstractmethod
    async def incr_connections(self, key: str, delta: int, ttl: float) -> int:
        """Add ``delta`` to a connection counter that expires ``ttl`` seconds after its
        last change; return the new value."""
