"""The node's registry of sockets: broker wake-ups in, frames out, presence kept.

A message wake-up carries the client frame already serialised; the hub wraps it in a
WebSocket frame once and hands the same bytes to every local socket of the
conversation. Each socket's :class:`Client` decides, from its cursor, whether to write
it, drop it as already written, or catch up from the store first.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import orjson
import structlog

from palaver.broker.base import BrokerUnavailable, PresenceStatus, Subscription
from palaver.core import events
from palaver.core.models import ConversationSummary, now_ms
from palaver.core.moderation import notifications
from palaver.gateway.client import Client, Outlet
from palaver.services import signals
from palaver.services.auth import Principal
from palaver.services.container import Services
from palaver.store.base import StoreUnavailable

log = structlog.get_logger(__name__)

PRESENCE_CHANNEL = "presence"
# Seconds between passes over the sockets (token expiry, idleness).
MAINTENANCE_TICK = 1.0
# Seconds between checks that no socket missed a wake-up.
SWEEP_SECONDS = 5.0
# Seconds between checks that every socket's conversations are its user's in the store.
MEMBERSHIP_CHECK_SECONDS = 30.0
# Sockets that have not resumed within this delay start from their default cursors.
RESUME_GRACE = 0.5
# Close codes (documented in docs/protocol.md).
CLOSE_TOKEN_EXPIRED = 4001
CLOSE_SESSION_REVOKED = 4003


@dataclass(slots=True)
class _Joining:
    """Sockets just given a conversation, its messages held until they are told."""

    conversation_id: int
    sockets: list[Client]
    subscribe: bool  # the node's first sockets of it: subscribe before reading


class Hub:
    """Every socket of this node, indexed by user and by conversation."""

    def __init__(self, services: Services, encode: Callable[[bytes], bytes]) -> None:
        self.services = services
        self.store = services.store
        self.users = services.users
        self.encode = encode
        self.by_user: dict[int, set[Client]] = {}
        self.by_conversation: dict[int, set[Client]] = {}
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        # Sockets holding a reply until the loop's next turn (Client.send_with_next).
        self._holding: list[Client] = []
        self._maintenance: asyncio.Task[None] | None = None
        self._status: dict[int, PresenceStatus] = {}
        # Each user's latest presence change on this node: an older one still awaiting
        # the database (a disconnect's "last seen") must not overwrite a reconnect's.
        self._presence_turns: dict[int, int] = {}
        self._presence_clock = itertools.count(1)
        # Presence entries outlive a dead node by at most this (heartbeat every third).
        self._presence_ttl = services.settings.presence_ttl
        # When each user with sockets here last had a membership signal (values from one
        # counter, never reused): a check of the store that a signal overtook must not
        # undo what the signal did.
        self._membership_epoch: dict[int, int] = {}
        self._epochs = itertools.count(1)
        # Users whose signals this node is sure to hear (their channel is subscribed).
        self._listening: set[int] = set()
        self._checking = False

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._subscription = await self.services.broker.subscribe(
            self._on_broker, [PRESENCE_CHANNEL]
        )
        self._maintenance = asyncio.create_task(self._maintain(), name="palaver.hub")

    async def close(self, code: int = 1012, reason: str = "server restarting") -> None:
        """Close every socket (1012: reconnect, another node or this one after restart
        will resume you) and stop."""
        for clients in list(self.by_user.values()):
            for client in list(clients):
                self.drop(client, code, reason)
        if self._maintenance is not None:
            self._maintenance.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self._subscription is not None:
            await self._subscription.close()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a task tied to the hub (cancelled on close, errors logged)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def release_later(self, client: Client) -> None:
        """Write ``client``'s held reply on the loop's next turn at the latest."""
        self._holding.append(client)
        if len(self._holding) == 1:
            asyncio.get_running_loop().call_soon(self._release_held)

    def _release_held(self) -> None:
        holding, self._holding = self._holding, []
        for client in holding:
            client.release()

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("hub.task_failed", exc_info=task.exception())

    # -- sockets ---------------------------------------------------------------------

    def membership_mark(self, user_id: int) -> int | None:
        """Take before reading a user's conversations for a new socket, and give to
        :meth:`attach`: it tells whether a membership signal came meanwhile (``None``:
        the node does not hear the user's signals yet, so it could not tell)."""
        if user_id not in self._listening:
            return None
        return self._membership_epoch.get(user_id, 0)

    def attach(
        self,
        outlet: Outlet,
        principal: Principal,
        summaries: list[ConversationSummary],
        *,
        auto_resume: bool = True,
        mark: int | None = None,
    ) -> Client:
        """Register an authenticated socket and greet it with ``hello``.

        ``summaries`` are the user's conversations read during the handshake, so the
        socket is registered synchronously, before its first frame can arrive. With
        ``auto_resume`` a socket that sends no ``resume`` within :data:`RESUME_GRACE`
        starts from the account's delivery cursors; without it, it waits for its own.

        A join or leave signalled after that read and before this node listened for the
        user's signals (or after ``mark``) would be lost to the socket: its
        conversations are then checked against the store once the node listens.
        """
        user_id = principal.user.id
        # Sockets opened with one token share one principal: thousands of a bot's or a
        # tab-happy user's sockets then cost one copy of the account, not one each.
        # (One comparison, with any socket of the user: O(1) per connect.)
        other = next(iter(self.by_user.get(user_id, ())), None)
        if other is not None and other.principal == principal:
            principal = other.principal
        client = Client(self, outlet, principal)
        client.last_activity = time.monotonic()
        known: dict[int, int] = {}
        for summary in summaries:
            cid = summary.conversation.id
            client.cursors[cid] = summary.member.delivered_seq
            known[cid] = summary.conversation.last_seq
        client.last_seqs = known
        new_channels = []
        unheard = (
            mark is None
            or user_id not in self._listening
            or self._membership_epoch.get(user_id, 0) != mark
        )
        if user_id not in self.by_user:
            self.by_user[user_id] = set()
            new_channels.append(signals.user_channel(user_id))
        self.by_user[user_id].add(client)
        for cid in client.cursors:
            if self._index(cid, client):
                new_channels.append(signals.conversation_channel(cid))
        if unheard:
            self.spawn(self._listen_then_check(new_channels, user_id))
        elif new_channels and self._subscription is not None:
            self.spawn(self._subscription.add(new_channels))
        self.services.metrics.ws_connections.inc()
        client.send(
            {
                "type": "hello",
                "user": {
                    "id": user_id,
                    "username": principal.user.username,
                    "display_name": principal.user.display_name,
                },
                "session_id": principal.session.id,
                "node": self.services.node_id,
                "server_time": now_ms(),
                "token_expires_at": principal.token_expires_at * 1000,
                "limits": {
                    "max_message_length": self.services.settings.max_message_length,
                    "max_frame_bytes": self.services.settings.ws_max_frame,
                },
                "conversations": [
                    {
                        "id": s.conversation.id,
                        "last_seq": s.conversation.last_seq,
                        "delivered_seq": s.member.delivered_seq,
                        "read_seq": s.member.read_seq,
                        "unread": s.unread,
                        "mentions": s.mentions,
                        "notifications": notifications(s.member),
                    }
                    for s in summaries
                ],
            }
        )
        if auto_resume:
            asyncio.get_running_loop().call_later(RESUME_GRACE, self._auto_resume, client)
        self.spawn(self._presence_changed(user_id))
        return client

    async def _listen_then_check(self, channels: list[str], user_id: int) -> None:
        if channels and self._subscription is not None:
            await self._subscription.add(channels)
        if signals.user_channel(user_id) in channels and user_id in self.by_user:
            self._listening.add(user_id)
        await self.check_memberships([user_id])

    def _auto_resume(self, client: Client) -> None:
        if not client.synced and not client.closed:
            client.resume({})

    def _index(self, conversation_id: int, client: Client) -> bool:
        """Add to the conversation index; ``True`` when it is the node's first socket."""
        clients = self.by_conversation.get(conversation_id)
        if clients is None:
            self.by_conversation[conversation_id] = {client}
            return True
        clients.add(client)
        return False

    def detach(self, client: Client) -> None:
        """Forget a closed socket (idempotent)."""
        if client.closed:
            return
        client.closed = True
        self.services.metrics.ws_connections.dec()
        user_id = client.user_id
        gone = []
        for cid in client.cursors:
            clients = self.by_conversation.get(cid)
            if clients is not None:
                clients.discard(client)
                if not clients:
                    del self.by_conversation[cid]
                    gone.append(signals.conversation_channel(cid))
        clients = self.by_user.get(user_id)
        if clients is not None:
            clients.discard(client)
            if not clients:
                del self.by_user[user_id]
                self._membership_epoch.pop(user_id, None)
                self._listening.discard(user_id)
                gone.append(signals.user_channel(user_id))
        if gone and self._subscription is not None:
            self.spawn(self._subscription.remove(gone))
        if user_id not in self.by_user:
            self.spawn(self._went_offline(user_id))

    def drop(self, client: Client, code: int, reason: str) -> None:
        client.outlet.close(code, reason)
        self.detach(client)

    # -- broker ----------------------------------------------------------------------

    def _on_broker(self, channel: str, payload: bytes) -> None:
        wake_up = signals.decode_messages(payload)
        if wake_up is not None:
            cid, messages = wake_up
            clients = self.by_conversation.get(cid)
            if clients:
                started = time.perf_counter()
                if len(messages) == 1:
                    seq, body = messages[0]
                    frame = self.encode(body)
                    for client in list(clients):
                        client.offer(cid, seq, frame)
                else:
                    self._offer_run(cid, clients, messages)
                count = len(clients) * len(messages)
                metrics = self.services.metrics
                metrics.deliveries.inc(count)
                metrics.ws_frames_out.inc(count)
                metrics.fanout_latency.observe(time.perf_counter() - started)
            return
        event = signals.decode_event(payload)
        if event is not None:
            cid = int(channel.split(":", 1)[1])
            clients = self.by_conversation.get(cid)
            if clients:
                frame = self.encode(event)
                for client in list(clients):
                    if client.synced:
                        client.send_encoded(frame)
            return
        try:
            signal = signals.decode(payload)
        except ValueError:
            log.warning("broker.bad_payload", channel=channel)
            return
        kind = signal["type"]
        if kind == "presence":
            self._forward_presence(signal)
        elif kind == "revoke":
            self._revoke(signal)
        elif kind in ("joined", "left"):
            user_id = int(signal["user_id"])
            if user_id in self.by_user:
                self._membership_epoch[user_id] = next(self._epochs)
            self.spawn(self._membership(signal))
        elif kind == "user_event":
            # A frame for one user's own sockets (their settings changed elsewhere).
            frame = self.encode(orjson.dumps(signal["frame"]))
            for client in list(self.by_user.get(int(signal["user_id"]), ())):
                client.send_encoded(frame)

    def _offer_run(self, cid: int, clients: set[Client], messages: list[tuple[int, bytes]]) -> None:
        """Several messages of one wake-up: each socket that is right before them takes
        them in one write, the others one by one."""
        frames = [(seq, self.encode(body)) for seq, body in messages]
        first, last = frames[0][0], frames[-1][0]
        consecutive = all(b[0] == a[0] + 1 for a, b in pairwise(frames))
        run = b"".join(frame for _, frame in frames) if consecutive else None
        for client in list(clients):
            if run is None or not client.offer_run(cid, first, last, run):
                for seq, frame in frames:
                    client.offer(cid, seq, frame)

    def _revoke(self, signal: dict[str, Any]) -> None:
        sessions = signal.get("sessions")
        for client in list(self.by_user.get(int(signal["user_id"]), ())):
            if sessions is None or client.principal.session.id in sessions:
                self.drop(client, CLOSE_SESSION_REVOKED, "session revoked")

    async def _membership(self, signal: dict[str, Any]) -> None:
        user_id = int(signal["user_id"])
        cid = int(signal["conversation_id"])
        clients = list(self.by_user.get(user_id, ()))
        if not clients:
            return
        if signal["type"] == "left":
            await self._unsubscribe(self._untrack(cid, clients))
            return
        await self._greet(self._track(cid, int(signal.get("seq") or 0), clients))

    def _untrack(self, cid: int, clients: list[Client]) -> list[int]:
        """Stop delivering ``cid`` to those of ``clients`` that have it and tell them;
        return ``[cid]`` when no socket of this node wants it any more."""
        frame: dict[str, object] = {"type": "left", "conversation_id": cid}
        emptied = []
        for client in clients:
            if cid not in client.cursors:
                continue  # never had it, or a check already took it back
            client.untrack(cid)
            index = self.by_conversation.get(cid)
            if index is not None:
                index.discard(client)
                if not index:
                    del self.by_conversation[cid]
                    emptied.append(cid)
            client.send(frame)
        return emptied

    async def _unsubscribe(self, emptied: list[int]) -> None:
        if self._subscription is None:
            return
        # Unless a join wanted one back in the meantime.
        gone = [signals.conversation_channel(c) for c in emptied if c not in self.by_conversation]
        if gone:
            await self._subscription.remove(gone)

    def _track(self, cid: int, seq: int, clients: list[Client]) -> _Joining:
        """Start delivering ``cid`` after ``seq`` to those of ``clients`` that do not
        have it, holding its messages back until :meth:`_greet` said ``joined``."""
        joining = _Joining(cid, [], subscribe=False)
        for client in clients:
            if cid in client.cursors:
                continue
            client.track(cid, seq)
            # A socket learns of the conversation before it gets any of its messages.
            client.hold(cid)
            joining.sockets.append(client)
            joining.subscribe = self._index(cid, client) or joining.subscribe
        return joining

    async def _greet(self, joining: _Joining) -> None:
        """Say ``joined`` to the sockets :meth:`_track` took on, then let their
        messages through (whatever happens: a socket must never stay held)."""
        cid = joining.conversation_id
        if not joining.sockets:
            return
        last_seq = 0
        try:
            if joining.subscribe and self._subscription is not None:
                await self._subscription.add([signals.conversation_channel(cid)])
            conversation = await self.store.get_conversation(cid)
            if conversation is not None:
                # Anything that arrived between the join and the subscription.
                last_seq = conversation.last_seq
                count = await self.store.count_members(cid)
                frame: dict[str, object] = {
                    "type": "joined",
                    "conversation": events.conversation(conversation, count),
                }
                for client in joining.sockets:
                    # A leave handled meanwhile took it back: no "joined" after "left".
                    if cid in client.cursors:
                        client.send(frame)
        finally:
            for client in joining.sockets:
                client.unhold(cid, upto=last_seq)
            if joining.subscribe and cid not in self.by_conversation:
                await self._unsubscribe([cid])

    async def check_memberships(self, user_ids: list[int]) -> None:
        """Bring the conversations of these users' sockets in line with the store.

        Joins and leaves reach sockets as signals, at most once: one lost to a broker
        outage, or sent while a socket was being opened, would leave a removed member
        reading a conversation (or a new one without it) for the socket's lifetime.
        This bounds that to :data:`MEMBERSHIP_CHECK_SECONDS`, and to a round trip for a
        socket just opened. Only sockets open before the read are touched, and a user
        whose signal arrived during the read is left to that signal.
        """
        before = {u: list(self.by_user[u]) for u in user_ids if u in self.by_user}
        if not before:
            return
        epochs = {u: self._membership_epoch.get(u, 0) for u in before}
        found = await self.store.memberships(list(before))
        emptied: list[int] = []
        joinings: list[_Joining] = []
        for user_id, sockets in before.items():
            if self._membership_epoch.get(user_id, 0) != epochs[user_id]:
                continue
            owned = found.get(user_id, {})
            for client in sockets:
                if client.closed:
                    continue
                for cid in [c for c in client.cursors if c not in owned]:
                    log.info("membership.stale", user_id=user_id, conversation_id=cid)
                    emptied += self._untrack(cid, [client])
                for cid, delivered in owned.items():
                    if cid not in client.cursors:
                        log.info("membership.missed", user_id=user_id, conversation_id=cid)
                        joinings.append(self._track(cid, delivered, [client]))
        # Every socket is in line before the first await: signals handled from here on
        # act on what the store said. Greetings run apart, so one that fails cannot
        # keep another socket held.
        for joining in joinings:
            self.spawn(self._greet(joining))
        await self._unsubscribe(emptied)

    async def _check_slice(self, turn: int) -> None:
        """Check the users whose id falls in this turn's slice: each user once in
        :data:`MEMBERSHIP_CHECK_SECONDS`, the reads spread over the ticks between."""
        try:
            slices = max(1, int(MEMBERSHIP_CHECK_SECONDS / MAINTENANCE_TICK))
            await self.check_memberships([u for u in self.by_user if u % slices == turn % slices])
        except StoreUnavailable as exc:
            log.warning("membership_check.failed", error=str(exc))
        finally:
            self._checking = False

    # -- presence --------------------------------------------------------------------

    async def _presence_changed(self, user_id: int, status: PresenceStatus | None = None) -> None:
        status = status or PresenceStatus.ONLINE
        if self._status.get(user_id) == status:
            return
        self._status[user_id] = status
        turn = self._next_presence_turn(user_id)
        broker = self.services.broker
        try:
            await broker.set_presence(user_id, status, self._presence_ttl)
            overall = (await broker.get_presence([user_id])).get(user_id, status)
            await self._publish_presence(user_id, overall, None, turn)
        except BrokerUnavailable as exc:
            log.warning("presence.unavailable", error=str(exc))

    async def _went_offline(self, user_id: int) -> None:
        self._status.pop(user_id, None)
        turn = self._next_presence_turn(user_id)
        broker = self.services.broker
        at = now_ms()
        try:
            await self.store.update_user(user_id, last_seen_at=at)
            self.users.forget(user_id)
            if user_id in self.by_user or self._presence_turns.get(user_id) != turn:
                return  # back already: the reconnect publishes "online"
            await broker.set_presence(user_id, PresenceStatus.OFFLINE, self._presence_ttl)
            overall = (await broker.get_presence([user_id])).get(user_id, PresenceStatus.OFFLINE)
            await self._publish_presence(user_id, overall, at, turn)
        except BrokerUnavailable as exc:
            log.warning("presence.unavailable", error=str(exc))
        finally:
            if self._presence_turns.get(user_id) == turn and user_id not in self.by_user:
                del self._presence_turns[user_id]

    def _next_presence_turn(self, user_id: int) -> int:
        # One counter for all users, so a turn is never handed out twice even after
        # a user's entry is forgotten.
        turn = next(self._presence_clock)
        self._presence_turns[user_id] = turn
        return turn

    async def _publish_presence(
        self, user_id: int, status: PresenceStatus, last_seen_at: int | None, turn: int
    ) -> None:
        conversations = await self.store.user_conversation_ids(user_id)
        if self._presence_turns.get(user_id) != turn:
            return  # a later change publishes instead, so they cannot arrive out of order
        await self.services.broker.publish(
            PRESENCE_CHANNEL,
            signals.encode(
                "presence",
                user_id=user_id,
                status=status.value,
                last_seen_at=last_seen_at,
                conversations=conversations,
            ),
        )

    def _forward_presence(self, signal: dict[str, Any]) -> None:
        """Send a presence change to local sockets allowed to see it."""
        frame = self.encode(
            orjson.dumps(
                events.presence(
                    int(signal["user_id"]), str(signal["status"]), signal.get("last_seen_at")
                )
            )
        )
        if self.services.settings.presence_visibility == "everyone":
            targets = {c for clients in self.by_user.values() for c in clients}
        else:
            targets = set()
            for cid in signal.get("conversations", ()):
                targets.update(self.by_conversation.get(int(cid), ()))
        hidden = self.services.moderation.state.hidden_from(int(signal["user_id"]))
        for client in targets:
            if client.synced and client.user_id not in hidden:
                client.send_encoded(frame)

    async def sweep(self) -> None:
        """Catch up every socket that is behind its conversation's last sequence number.

        Wake-ups travel at most once: one lost to a broker restart would otherwise go
        unnoticed until the conversation's next message. This bounds the delay to
        :data:`SWEEP_SECONDS`, with one query per sweep.
        """
        if not self.by_conversation:
            return
        last = await self.store.last_seqs(list(self.by_conversation))
        for cid, seq in last.items():
            for client in list(self.by_conversation.get(cid, ())):
                if client.synced and client.cursors.get(cid, seq) < seq:
                    client.catch_up(cid, upto=seq)

    def touch(self, client: Client) -> None:
        """The socket did something: its user is active again if they were away."""
        client.last_activity = time.monotonic()
        if self._status.get(client.user_id) is PresenceStatus.AWAY:
            self.spawn(self._presence_changed(client.user_id, PresenceStatus.ONLINE))

    async def set_status(self, client: Client, status: PresenceStatus) -> None:
        """A socket says its user is online (active) or away (idle)."""
        client.last_activity = time.monotonic()
        await self._presence_changed(client.user_id, status)

    # -- maintenance -----------------------------------------------------------------

    async def _maintain(self) -> None:
        """Heartbeat the node, refresh presence, end expired tokens, mark idle users away.

        Ticks every second (a pass over every socket costs about a millisecond per
        10,000), heartbeats every third of the presence TTL, with jitter so the nodes
        of a cluster do not beat in step."""
        broker = self.services.broker
        away_after = self.services.settings.presence_away_after
        next_beat = 0.0
        next_sweep = time.monotonic() + SWEEP_SECONDS
        turns = itertools.count()
        while True:
            now = time.monotonic()
            if now >= next_sweep:
                next_sweep = now + SWEEP_SECONDS
                try:
                    await self.sweep()
                except StoreUnavailable as exc:
                    log.warning("sweep.failed", error=str(exc))
            # A slice of the users each tick, beside the loop: its reads and greetings
            # never hold up heartbeats or token expiry.
            turn = next(turns)
            if not self._checking:
                self._checking = True
                self.spawn(self._check_slice(turn))
            if now >= next_beat:
                next_beat = now + self._presence_ttl / 3 * random.uniform(0.9, 1.1)
                try:
                    await broker.node_heartbeat(self._presence_ttl)
                except BrokerUnavailable as exc:
                    log.warning("heartbeat.failed", error=str(exc))
            # Other workers' scrapes read this process's figures from shared files.
            self.services.metrics.flush()
            now_wall = time.time()
            for user_id, clients in list(self.by_user.items()):
                for client in list(clients):
                    if client.principal.token_expires_at < now_wall:
                        self.drop(client, CLOSE_TOKEN_EXPIRED, "access token expired")
                remaining = self.by_user.get(user_id)
                if remaining and all(now - c.last_activity > away_after for c in remaining):
                    await self._presence_changed(user_id, PresenceStatus.AWAY)
            await asyncio.sleep(MAINTENANCE_TICK)
