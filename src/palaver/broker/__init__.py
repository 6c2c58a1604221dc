"""Palaver broker: the interface, its in-process and Redis implementations, and a factory."""

from __future__ import annotations

from palaver.broker.base import (
    Broker,
    BrokerUnavailable,
    Handler,
    PresenceStatus,
    Reservation,
    Subscription,
)

__all__ = [
    "Broker",
    "BrokerUnavailable",
    "Handler",
    "PresenceStatus",
    "Reservation",
    "Subscription",
    "create_broker",
]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def create_broker(
    redis_url: str, *, node_id: str | None = None, namespace: str = "palaver"
) -> Broker:
    """The broker for ``redis_url``: in-process when it is empty, else Redis.

    Accepts ``""``, ``redis://…``, ``rediss://…`` or ``unix://…``; anything else raises
    :class:`ValueError`. ``namespace`` prefixes Redis keys and channels (unused in
    process). Imports are deferred so a single-node server never loads redis-py.
    """
    if not redis_url:
        from palaver.broker.memory import MemoryBroker

        return MemoryBroker(node_id)
    if redis_url.startswith(_REDIS_SCHEMES):
        from palaver.broker.redis import RedisBroker

        return RedisBroker(redis_url, node_id=node_id, namespace=namespace)
    raise ValueError(
        f"unsupported broker URL {redis_url!r}: expected an empty string (in-process) "
        "or a URL starting with redis://, rediss:// or unix://"
    )
