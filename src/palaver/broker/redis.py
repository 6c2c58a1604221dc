"""The Redis broker: nodes of one cluster share a Redis server (redis-py's asyncio client).

Keys and channels all start with ``{namespace}:`` so several clusters (or test runs) can
share one Redis. Layout:

- ``{ns}:ch:{channel}``: pub/sub channels.
- ``{ns}:nodes``: sorted set, node id scored by heartbeat expiry (Redis time, µs).
- ``{ns}:presence:{user_id}``: hash, node id -> ``"{status} {expiry µs}"``; the key's own
  TTL follows its latest entry so abandoned users disappear.
- ``{ns}:bucket:{key}``, ``{ns}:count:{key}``, ``{ns}:conn:{key}``: rate-limit state;
  ``{ns}:window:{key}``, the name of the window ``{ns}:count:{key}`` counts reservations
  in, expiring with it.

Expiry stamps and token buckets use the Redis server's clock (``TIME``) inside Lua
scripts, so nodes with skewed clocks agree.

One pub/sub connection per broker carries every subscription; a reader task dispatches
to a :class:`~palaver.broker.memory.ChannelRouter`. When that connection drops (Redis
restarted, connection killed, silence past a ping) the reader reconnects with backoff
and subscribes again to every channel; publications sent meanwhile are lost, which the
broker contract allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import re
import secrets
from collections.abc import AsyncIterator, Iterable

import structlog
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from palaver.broker.base import (
    Broker,
    BrokerUnavailable,
    Handler,
    PresenceStatus,
    Reservation,
    Subscription,
)
from palaver.broker.memory import ChannelRouter, new_node_id
from palaver.core.ratelimit import WAIT_EPSILON, check_bucket_params, check_limit

log = structlog.get_logger(__name__)

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)

# Commands fail fast when Redis is down: callers (a send, a login) would rather hear
# BrokerUnavailable in a second than hang. One quick retry absorbs a pooled connection
# that went stale while Redis restarted.
_SOCKET_TIMEOUT = 2.0
_COMMAND_RETRY = Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1)

# The reader polls so it can notice a silent connection (a half-open TCP connection
# after a failover never errors): after _PING_AFTER seconds without traffic it pings,
# and no answer within _PONG_TIMEOUT means the connection is dead.
_POLL = 1.0
_PING_AFTER = 10.0
_PONG_TIMEOUT = 5.0

# Reconnection backoff: quick first retries (a killed connection comes straight back),
# capped so a long outage costs one attempt every few seconds per node, jittered so
# nodes do not stampede a restarted Redis together.
_BACKOFF_BASE = 0.05
_BACKOFF_CAP = 5.0

# How long subscribe()/add() wait for Redis to confirm a new channel before giving up
# quietly (the channel stays wanted and is subscribed on the next reconnection).
_CONFIRM_TIMEOUT = 5.0

# Heartbeats rewrite presence entries in chunks so one script call never blocks Redis
# for long on a node holding tens of thousands of users.
_HEARTBEAT_CHUNK = 1000

# KEYS: presence hashes. ARGV: node id, ttl (µs), then one status per key. Writes this
# node's entry (or deletes it for "offline"), drops entries that expired, and keeps the
# key alive as long as its latest entry.
_SET_PRESENCE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[2])
local stamp = string.format('%d', now + ttl)
local ttl_ms = math.ceil(ttl / 1000)
for i, key in ipairs(KEYS) do
  local status = ARGV[i + 2]
  if status == 'offline' then
    redis.call('HDEL', key, ARGV[1])
  else
    redis.call('HSET', key, ARGV[1], status .. ' ' .. stamp)
    if redis.call('PTTL', key) < ttl_ms then
      redis.call('PEXPIRE', key, ttl_ms)
    end
  end
  local entries = redis.call('HGETALL', key)
  for j = 1, #entries, 2 do
    local expires = tonumber(string.match(entries[j + 1], ' (%d+)$'))
    if expires == nil or expires <= now then
      redis.call('HDEL', key, entries[j])
    end
  end
end
return 1
"""

# KEYS: presence hashes. Returns each user's best unexpired status.
_GET_PRESENCE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local result = {}
for i, key in ipairs(KEYS) do
  local best = 'offline'
  local entries = redis.call('HGETALL', key)
  for j = 2, #entries, 2 do
    local status, expires = string.match(entries[j], '^(%a+) (%d+)$')
    if expires and tonumber(expires) > now then
      if status == 'online' then
        best = 'online'
        break
      elseif status == 'away' then
        best = 'away'
      end
    end
  end
  result[i] = best
end
return result
"""

# KEYS[1]: the nodes sorted set. ARGV: node id, ttl (µs); an empty node id only lists.
# Returns the live node ids.
_NODES_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[1] ~= '' then
  local ttl = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  local ttl_ms = math.ceil(ttl / 1000)
  if redis.call('PTTL', KEYS[1]) < ttl_ms then
    redis.call('PEXPIRE', KEYS[1], ttl_ms)
  end
end
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""

# KEYS[1]: bucket hash. ARGV: burst, tokens per second, epsilon (s). The arithmetic of
# palaver.core.ratelimit.TokenBucket.take, on Redis time in integer microseconds (exact
# in a double, unlike seconds since 1970 with a fraction). Returns the wait as a string
# (Lua numbers become integers in replies).
_BUCKET_LUA = """
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then
  tokens = burst
  updated = now
end
tokens = math.min(burst, tokens + math.max(0, now - updated) / 1000000 * rate)
updated = math.max(now, updated)
local wait = (1 - tokens) / rate
if wait <= tonumber(ARGV[3]) then
  tokens = math.max(0, tokens - 1)
  wait = 0
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'updated', string.format('%d', updated))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return string.format('%.17g', wait)
"""

# KEYS[1]: counter, KEYS[2]: its window's name. ARGV: limit, window (ms), a fresh name.
# count_hit's INCR and PEXPIRE NX, done only below the limit, answering {0, the window's
# name}; else {the window's remaining milliseconds, ""}. One script, so racing callers on
# any node never count past the limit. A window opened here (or by count_hit, which
# names none) takes the fresh name, expiring with the counter.
_RESERVE_LUA = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then
  local left = redis.call('PTTL', KEYS[1])
  if left > 0 then
    return {left, ''}
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {tonumber(ARGV[2]), ''}
end
redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2], 'NX')
local name = redis.call('GET', KEYS[2])
if count == 0 or not name then
  name = ARGV[3]
  redis.call('SET', KEYS[2], name, 'PXAT', redis.call('PEXPIRETIME', KEYS[1]))
end
return {0, name}
"""

# KEYS[1]: counter, KEYS[2]: its window's name. ARGV: the name of the window the
# reservation was counted in. Takes one back, never below zero, and only from that
# window: a window that ended (or one opened since) has nothing of it to take back. At
# zero the keys go, as the memory broker forgets the window.
_RELEASE_LUA = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 1 then
  redis.call('DECR', KEYS[1])
elseif count == 1 then
  redis.call('DEL', KEYS[1], KEYS[2])
end
return 1
"""


def _ms(seconds: float) -> int:
    """A positive whole number of milliseconds (Redis rejects 0 as an expiry)."""
    return max(1, math.ceil(seconds * 1000))


def _us(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1_000_000))


@contextlib.asynccontextmanager
async def _reaching_redis() -> AsyncIterator[None]:
    """Translate "Redis cannot be reached" into :class:`BrokerUnavailable`."""
    try:
        yield
    except _UNREACHABLE as exc:
        raise BrokerUnavailable(f"Redis is unreachable: {exc}") from exc


class _RedisSubscription(Subscription):
    def __init__(self, broker: RedisBroker, handler: Handler) -> None:
        self._broker = broker
        self._handler = handler

    async def add(self, channels: Iterable[str]) -> None:
        await self._broker._add(self, self._handler, list(channels))

    async def remove(self, channels: Iterable[str]) -> None:
        await self._broker._remove(self, list(channels))

    async def close(self) -> None:
        await self._broker._remove(self, None)


class RedisBroker(Broker):
    """A :class:`~palaver.broker.base.Broker` on Redis, shared by every node.

    ``url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL; ``namespace`` prefixes
    every key and channel. Call :meth:`start` first: it raises
    :class:`~palaver.broker.base.BrokerUnavailable` when Redis cannot be reached.

    Subscribing while Redis is unreachable records the interest without raising; it
    takes effect when the reader reconnects. Presence set through this broker is
    remembered locally and rewritten by every :meth:`node_heartbeat`, so it also comes
    back after Redis loses its data.
    """

    def __init__(self, url: str, *, node_id: str | None = None, namespace: str = "palaver") -> None:
        if not namespace:
            raise ValueError("namespace must not be empty")
        self.node_id = node_id or new_node_id()
        self.url = url
        self.namespace = namespace
        self._prefix = f"{namespace}:"
        self._channel_prefix = f"{namespace}:ch:".encode()
        self._nodes_key = f"{namespace}:nodes"
        # Named connections show up in CLIENT LIST as "{namespace}:{node}[:pubsub]".
        name = re.sub(r"\s", "_", f"{namespace}:{self.node_id}")
        self._redis: Redis = Redis.from_url(
            url,
            client_name=name,
            socket_timeout=_SOCKET_TIMEOUT,
            socket_connect_timeout=_SOCKET_TIMEOUT,
            retry=_COMMAND_RETRY,
        )
        # Pub/sub runs on one raw connection that only this class drives. redis-py's
        # PubSub reconnects inside whichever task hits an error, which races the reader
        # for the socket; here the reader alone replaces a dead connection. RESP2 keeps
        # the frames plain arrays.
        self._sub_pool: ConnectionPool = ConnectionPool.from_url(
            url,
            client_name=f"{name}:pubsub",
            socket_timeout=_SOCKET_TIMEOUT,
            socket_connect_timeout=_SOCKET_TIMEOUT,
            retry=Retry(NoBackoff(), retries=0),
            protocol=2,
        )
        self._set_presence_script = self._redis.register_script(_SET_PRESENCE_LUA)
        self._get_presence_script = self._redis.register_script(_GET_PRESENCE_LUA)
        self._nodes_script = self._redis.register_script(_NODES_LUA)
        self._take_token_script = self._redis.register_script(_BUCKET_LUA)
        self._reserve_script = self._redis.register_script(_RESERVE_LUA)
        self._release_script = self._redis.register_script(_RELEASE_LUA)
        self._router = ChannelRouter()
        # Guards the pub/sub connection and the router together, so a reconnection
        # subscribes to exactly the channels wanted at that moment.
        self._lock = asyncio.Lock()
        self._sub: AbstractConnection | None = None
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._present: dict[int, PresenceStatus] = {}
        self._started = False
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        await self.ping()
        # Connect pub/sub before returning so a subscription made right after start()
        # is confirmed by a running reader.
        try:
            sub = await self._connect_sub()
        except _UNREACHABLE as exc:
            raise BrokerUnavailable(f"Redis is unreachable: {exc}") from exc
        self._reader = asyncio.create_task(
            self._read_forever(sub), name=f"palaver-broker-reader-{self.node_id}"
        )
        self._started = True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
            self._reader = None
        await self._drop_sub()
        for future in self._confirming.values():
            if not future.done():
                future.set_result(None)
        self._confirming.clear()
        if self._started:
            await self._remove_own_entries()
        self._present.clear()
        await self._sub_pool.aclose()
        await self._redis.aclose()

    async def _remove_own_entries(self) -> None:
        try:
            async with _reaching_redis():
                offline = dict.fromkeys(self._present, PresenceStatus.OFFLINE)
                await self._write_presence(offline, ttl=1)
                await self._redis.zrem(self._nodes_key, self.node_id)
        except BrokerUnavailable as exc:
            # Nothing to clean up with; the entries expire on their own.
            log.warning("broker could not remove this node's entries", error=str(exc))

    async def ping(self) -> None:
        if self._closed:
            raise BrokerUnavailable("the broker is closed")
        async with _reaching_redis():
            await self._redis.ping()

    # -- publish / subscribe -------------------------------------------------------------

    async def publish(self, channel: str, payload: bytes) -> None:
        async with _reaching_redis():
            await self._redis.publish(self._channel_prefix + channel.encode(), payload)

    async def subscribe(self, handler: Handler, channels: Iterable[str] = ()) -> Subscription:
        subscription = _RedisSubscription(self, handler)
        await subscription.add(channels)
        return subscription

    async def _add(self, key: _RedisSubscription, handler: Handler, channels: list[str]) -> None:
        loop = asyncio.get_running_loop()
        async with self._lock:
            fresh = self._router.add(key, handler, channels)
            if fresh and self._sub is not None:
                for channel in fresh:
                    self._confirming.setdefault(channel, loop.create_future())
                if not await self._send_sub("SUBSCRIBE", *self._wire(fresh)):
                    return
            # Also wait for channels another subscription is still confirming.
            waiting = [self._confirming[c] for c in channels if c in self._confirming]
        if waiting:
            done, _ = await asyncio.wait(waiting, timeout=_CONFIRM_TIMEOUT)
            if len(done) < len(waiting):
                log.warning("broker subscription not confirmed in time", channels=channels)

    async def _remove(self, key: _RedisSubscription, channels: list[str] | None) -> None:
        async with self._lock:
            gone = (
                self._router.drop(key) if channels is None else self._router.remove(key, channels)
            )
            for channel in gone:
                future = self._confirming.pop(channel, None)
                if future is not None and not future.done():
                    future.set_result(None)
            # If this fails it does no harm: the router no longer routes these channels,
            # and a reconnection does not subscribe to them again.
            if gone:
                await self._send_sub("UNSUBSCRIBE", *self._wire(gone))

    def _wire(self, channels: Iterable[str]) -> list[bytes]:
        return [self._channel_prefix + channel.encode() for channel in channels]

    # -- the reader ----------------------------------------------------------------------

    async def _send_sub(self, *command: str | bytes) -> bool:
        """Send on the pub/sub connection, if it is up; return whether it was sent.

        Call with ``self._lock`` held: the connection is only ever closed under it, so
        it cannot vanish mid-send. Never reconnects (redis-py would, given a closed
        connection): the reader does, and then subscribes to every wanted channel.
        """
        sub = self._sub
        if sub is None or not sub.is_connected:
            return False
        try:
            await sub.send_command(*command, check_health=False)
        except _UNREACHABLE as exc:
            # redis-py has closed the connection, so the reader's next read fails too.
            log.warning("broker pub/sub send failed", command=command[0], error=str(exc))
            return False
        return True

    async def _connect_sub(self) -> AbstractConnection:
        # redis-py leaves ConnectionPool.get_connection unannotated.
        sub: AbstractConnection = await self._sub_pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            async with self._lock:
                channels = self._router.channels
                if channels:
                    await sub.send_command("SUBSCRIBE", *self._wire(channels), check_health=False)
                self._sub = sub
        except BaseException:
            await self._release(sub)
            raise
        return sub

    async def _release(self, sub: AbstractConnection) -> None:
        with contextlib.suppress(*_UNREACHABLE):
            await sub.disconnect(nowait=True)
        await self._sub_pool.release(sub)

    async def _drop_sub(self) -> None:
        async with self._lock:
            sub, self._sub = self._sub, None
        if sub is not None:
            await self._release(sub)

    async def _read_forever(self, sub: AbstractConnection) -> None:
        failures = 0
        while True:
            try:
                await self._pump(sub)
            except _UNREACHABLE as exc:
                log.warning("broker pub/sub connection lost", error=str(exc), node=self.node_id)
            except Exception:
                log.exception("broker reader failed", node=self.node_id)
            await self._drop_sub()
            while True:
                failures += 1
                ceiling = min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** min(failures, 16))
                await asyncio.sleep(random.uniform(ceiling / 2, ceiling))
                try:
                    sub = await self._connect_sub()
                except _UNREACHABLE as exc:
                    log.info(
                        "broker reconnection failed",
                        error=str(exc),
                        attempt=failures,
                        node=self.node_id,
                    )
                    continue
                except Exception:
                    # Whatever it was, giving up would leave this node deaf for good.
                    log.exception("broker reconnection failed", attempt=failures)
                    continue
                log.info("broker pub/sub reconnected", node=self.node_id)
                failures = 0
                break

    async def _pump(self, sub: AbstractConnection) -> None:
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged: float | None = None
        prefix = self._channel_prefix
        while True:
            # A timed-out read returns None and keeps any partial frame for the next one.
            # On errors the connection stays open until _drop_sub() closes it under the
            # lock, so a concurrent send never finds it half torn down.
            frame = await sub.read_response(
                timeout=_POLL, disconnect_on_error=False, push_request=True
            )
            now = loop.time()
            if frame is None:
                if pinged is not None:
                    if now - pinged > _PONG_TIMEOUT:
                        raise RedisTimeoutError("no answer to a ping on the pub/sub connection")
                elif now - heard > _PING_AFTER:
                    async with self._lock:
                        sent = await self._send_sub("PING")
                    if not sent:
                        raise RedisConnectionError("the pub/sub connection is closed")
                    pinged = now
                continue
            heard, pinged = now, None
            # Frames are [kind, channel, data-or-count]; anything else (a pong) only
            # proves the connection is alive.
            if not (isinstance(frame, list) and len(frame) == 3):
                continue
            kind, channel, data = frame
            if not (isinstance(channel, bytes) and channel.startswith(prefix)):
                continue
            if kind == b"message":
                self._router.deliver(channel[len(prefix) :].decode(), data)
            elif kind == b"subscribe":
                future = self._confirming.pop(channel[len(prefix) :].decode(), None)
                if future is not None and not future.done():
                    future.set_result(None)

    # -- liveness and presence -----------------------------------------------------------

    def _presence_key(self, user_id: int) -> str:
        return f"{self._prefix}presence:{user_id}"

    async def _write_presence(self, statuses: dict[int, PresenceStatus], ttl: float) -> None:
        items = list(statuses.items())
        for start in range(0, len(items), _HEARTBEAT_CHUNK):
            chunk = items[start : start + _HEARTBEAT_CHUNK]
            await self._set_presence_script(
                keys=[self._presence_key(user_id) for user_id, _ in chunk],
                args=[self.node_id, _us(ttl), *(status.value for _, status in chunk)],
            )

    async def node_heartbeat(self, ttl: float) -> None:
        async with _reaching_redis():
            await self._nodes_script(keys=[self._nodes_key], args=[self.node_id, _us(ttl)])
            await self._write_presence(dict(self._present), ttl)

    async def live_nodes(self) -> set[str]:
        async with _reaching_redis():
            nodes = await self._nodes_script(keys=[self._nodes_key], args=["", 0])
        return {node.decode() for node in nodes}

    async def set_presence(self, user_id: int, status: PresenceStatus, ttl: float) -> None:
        # Remembered first, so the next heartbeat repairs a write that failed.
        if status is PresenceStatus.OFFLINE:
            self._present.pop(user_id, None)
        else:
            self._present[user_id] = status
        async with _reaching_redis():
            await self._write_presence({user_id: status}, ttl)

    async def get_presence(self, user_ids: Iterable[int]) -> dict[int, PresenceStatus]:
        users = list(dict.fromkeys(user_ids))
        if not users:
            return {}
        async with _reaching_redis():
            statuses = await self._get_presence_script(
                keys=[self._presence_key(user_id) for user_id in users]
            )
        return {
            user_id: PresenceStatus(status.decode())
            for user_id, status in zip(users, statuses, strict=True)
        }

    # -- shared counters (rate limits) ---------------------------------------------------

    async def take_token(self, key: str, burst: int, per_second: float) -> float:
        check_bucket_params(burst, per_second)
        async with _reaching_redis():
            wait = await self._take_token_script(
                keys=[f"{self._prefix}bucket:{key}"],
                args=[burst, repr(float(per_second)), repr(WAIT_EPSILON)],
            )
        return float(wait)

    async def count_hit(self, key: str, window: float) -> int:
        name = f"{self._prefix}count:{key}"
        async with _reaching_redis(), self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.pexpire(name, _ms(window), nx=True)
            count, _ = await pipe.execute()
        return int(count)

    def _window_keys(self, key: str) -> list[str]:
        """Counter ``key`` and the name of its window."""
        return [f"{self._prefix}count:{key}", f"{self._prefix}window:{key}"]

    async def reserve_hit(self, key: str, limit: int, window: float) -> Reservation:
        check_limit(limit)
        async with _reaching_redis():
            left, name = await self._reserve_script(
                keys=self._window_keys(key), args=[limit, _ms(window), secrets.token_hex(8)]
            )
        if int(left) > 0:
            return Reservation(key, None, int(left) / 1000)
        return Reservation(key, name.decode())

    async def release_hit(self, reservation: Reservation) -> None:
        if reservation.window is None:
            return
        async with _reaching_redis():
            await self._release_script(
                keys=self._window_keys(reservation.key), args=[reservation.window]
            )

    async def get_count(self, key: str) -> int:
        async with _reaching_redis():
            count = await self._redis.get(f"{self._prefix}count:{key}")
        return 0 if count is None else int(count)

    async def reset_count(self, key: str) -> None:
        async with _reaching_redis():
            await self._redis.delete(*self._window_keys(key))

    async def incr_connections(self, key: str, delta: int, ttl: float) -> int:
        name = f"{self._prefix}conn:{key}"
        async with _reaching_redis(), self._redis.pipeline(transaction=True) as pipe:
            pipe.incrby(name, delta)
            pipe.pexpire(name, _ms(ttl))
            value, _ = await pipe.execute()
        return int(value)
