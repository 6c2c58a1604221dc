"""The native ``/ws`` protocol: authorize the handshake, then run each socket's commands.

A socket's commands run one after another (a task exists only while it has work), so
two sends from one device are committed in the order they were sent.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from typing import Any
from urllib.parse import urlsplit

import orjson
import structlog

from palaver.broker.base import BrokerUnavailable, PresenceStatus
from palaver.core import events, protocol
from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import Appended, ConversationSummary
from palaver.core.rich import RICH_COMMANDS
from palaver.gateway import rich as rich_commands
from palaver.gateway.client import Client
from palaver.gateway.hub import CLOSE_TOKEN_EXPIRED, Hub
from palaver.gateway.lean import (
    CLOSE_TOO_SLOW,
    Accept,
    Connection,
    GatewayHandler,
    Reject,
    Request,
)
from palaver.http.middleware import client_ip
from palaver.services.auth import Principal
from palaver.services.container import Services
from palaver.services.search import search_frame
from palaver.services.tokens import bearer_from_header
from palaver.store.base import StoreUnavailable

log = structlog.get_logger(__name__)

# Frames a socket may have waiting before it is told to slow down.
MAX_PENDING_COMMANDS = 256
CONNECTION_COUNTER_TTL = 3600.0


class Slot:
    """Per-socket state kept on the transport connection (``Connection.state``)."""

    __slots__ = ("client", "ip", "mark", "principal", "queue", "running", "summaries")

    def __init__(
        self,
        principal: Principal,
        summaries: list[ConversationSummary],
        ip: str,
        mark: int | None,
    ):
        self.principal = principal
        self.summaries: list[ConversationSummary] | None = summaries
        self.ip = ip
        # What the hub had heard of the user's memberships before summaries were read.
        self.mark = mark
        self.client: Client | None = None
        self.queue: deque[protocol.Command] | None = None
        self.running = False


def _origin_allowed(request: Request, allowed: list[str]) -> bool:
    origin = request.origin
    if origin is None:
        return True  # not a browser: cross-site forgery needs one
    if origin in allowed:
        return True
    host = request.headers.get("host", "")
    return bool(host) and urlsplit(origin).netloc.lower() == host.lower()


class NativeHandler(GatewayHandler):
    """Implements Palaver's own protocol on the lean WebSocket path."""

    def __init__(self, services: Services, hub: Hub) -> None:
        self.services = services
        self.hub = hub
        self.settings = services.settings

    # -- handshake -------------------------------------------------------------------

    async def authorize(self, request: Request) -> Accept | Reject:
        settings = self.settings
        if not _origin_allowed(request, settings.ws_allowed_origins):
            return Reject(403, ErrorCode.FORBIDDEN.value, "origin not allowed")
        token = bearer_from_header(request.headers.get("authorization")) or request.query.get(
            "token"
        )
        if not token:
            return Reject(401, ErrorCode.UNAUTHORIZED.value, "an access token is required")
        try:
            principal = await self.services.auth.authenticate(token)
        except PalaverError as exc:
            return Reject(401 if exc.http_status == 401 else 403, exc.code.value, exc.message)
        except StoreUnavailable:
            return Reject(503, ErrorCode.UNAVAILABLE.value, "database unavailable; retry")
        scope = {
            "type": "websocket",
            "client": request.client,
            "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.raw_items()],
        }
        ip = client_ip(scope, settings.trusted_proxies)
        try:
            count = await self.services.broker.incr_connections(
                f"conn:{ip}", 1, CONNECTION_COUNTER_TTL
            )
            if count > settings.max_connections_per_ip:
                await self.services.broker.incr_connections(
                    f"conn:{ip}", -1, CONNECTION_COUNTER_TTL
                )
                self.services.metrics.rate_limited.labels(scope="connections").inc()
                return Reject(
                    429,
                    ErrorCode.RATE_LIMITED.value,
                    "too many connections from this address",
                    headers=[("Retry-After", "10")],
                )
        except BrokerUnavailable:
            return Reject(503, ErrorCode.UNAVAILABLE.value, "broker unavailable; retry")
        mark = self.hub.membership_mark(principal.user.id)
        summaries = await self.services.store.list_user_conversations(principal.user.id)
        return Accept(state=Slot(principal, summaries, ip, mark))

    def on_open(self, conn: Connection) -> None:
        slot: Slot = conn.state  # type: ignore[assignment]
        assert slot.summaries is not None
        # ?resume=1: a client that keeps cursors; it must not be resumed from the
        # account's delivery cursor (another device's) because its resume came late.
        explicit = conn.request.query.get("resume", "") in ("1", "true", "wait")
        conn.request.forget_head()
        slot.client = self.hub.attach(
            conn, slot.principal, slot.summaries, auto_resume=not explicit, mark=slot.mark
        )
        slot.summaries = None

    def on_close(self, conn: Connection, code: int) -> None:
        slot: Slot = conn.state  # type: ignore[assignment]
        if code == CLOSE_TOO_SLOW:
            self.services.metrics.slow_consumers_dropped.inc()
        if slot.client is not None:
            self.hub.detach(slot.client)
        self.hub.spawn(self._release(slot.ip))

    async def _release(self, ip: str) -> None:
        # When the broker is down the counter expires on its own.
        with contextlib.suppress(BrokerUnavailable):
            await self.services.broker.incr_connections(f"conn:{ip}", -1, CONNECTION_COUNTER_TTL)

    # -- frames ----------------------------------------------------------------------

    def on_text(self, conn: Connection, data: bytes) -> None:
        slot: Slot = conn.state  # type: ignore[assignment]
        client = slot.client
        if client is None or client.closed:
            return
        self.services.metrics.ws_frames_in.inc()
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError:
            client.send(events.error(None, PalaverError(ErrorCode.INVALID_JSON, "not JSON")))
            return
        try:
            command = protocol.parse_command(raw, max_length=self.settings.max_message_length)
        except PalaverError as exc:
            cid = raw.get("id") if isinstance(raw, dict) else None
            client.send(events.error(cid if isinstance(cid, str | int) else None, exc))
            return
        if isinstance(command, protocol.Ping):
            # A heartbeat, not activity: it must not turn an idle user back online.
            client.send(events.reply(command.id, "pong", timestamp=int(time.time() * 1000)))
            return
        if not isinstance(command, protocol.SetPresence):
            self.hub.touch(client)
        if (
            not slot.running
            and isinstance(command, protocol.Send)
            and self._send_now(slot, client, command)
        ):
            return
        if slot.queue is None:
            slot.queue = deque()
        if len(slot.queue) >= MAX_PENDING_COMMANDS:
            client.send(
                events.error(
                    command.id,
                    PalaverError(
                        ErrorCode.RATE_LIMITED, "too many frames in flight", retry_after=1
                    ),
                )
            )
            return
        slot.queue.append(command)
        if not slot.running:
            slot.running = True
            self.hub.spawn(self._drain(slot, client))

    def _send_now(self, slot: Slot, client: Client, command: protocol.Send) -> bool:
        """Start a plain send to a conversation this socket follows without a task;
        ``False`` leaves it to the queue. The socket's next commands wait in the queue
        until its outcome is sent, as they would behind a running send."""
        cid = command.conversation_id
        if cid is None or cid not in client.cursors or command.attachments:
            return False
        if command.reply_to_id is not None or command.thread_root_id is not None:
            return False

        def sent(appended: Appended | None, error: BaseException | None) -> None:
            try:
                if appended is not None:
                    ack = events.ack(command.id, appended.message, appended.duplicate)
                    client.send_with_next(ack)
                else:
                    assert error is not None
                    self._doubt_membership(client, cid, error)
                    client.send(self._error_reply(command, error))
            finally:
                client.send_settled(cid)
                # Whatever happened above, the socket's next commands must run.
                slot.running = False
                if slot.queue:
                    slot.running = True
                    self.hub.spawn(self._drain(slot, client))

        client.send_started(cid)
        try:
            started = self.services.messaging.send_now(
                client.principal.user, cid, command.content, command.client_msg_id, sent
            )
        except Exception as exc:
            client.send_settled(cid)
            client.send(self._error_reply(command, exc))
            return True
        if not started:
            client.send_settled(cid)
        slot.running = started
        return started

    async def _drain(self, slot: Slot, client: Client) -> None:
        try:
            while slot.queue:
                command = slot.queue.popleft()
                # A socket that closed gets no more replies and its other commands
                # are dropped (an unacknowledged send is retried by its client), but
                # the receipts it sent before closing still move its cursors: a client
                # that reads and leaves must not find its messages unread elsewhere.
                if not client.closed or isinstance(command, protocol.Receipt):
                    await self._run(client, command)
        finally:
            slot.running = False
            if not slot.queue:
                slot.queue = None

    async def _run(self, client: Client, command: protocol.Command) -> None:
        try:
            reply = await self._execute(client, command)
        except Exception as exc:
            reply = self._error_reply(command, exc)
        if reply is not None:
            client.send(reply)

    @staticmethod
    def _error_reply(command: protocol.Command, exc: BaseException) -> dict[str, Any]:
        if isinstance(exc, PalaverError):
            return events.error(command.id, exc)
        if isinstance(exc, StoreUnavailable | BrokerUnavailable):
            return events.error(
                command.id,
                PalaverError(ErrorCode.UNAVAILABLE, "storage unavailable; retry", retry_after=1),
            )
        log.error("command.failed", command=type(command).__name__, exc_info=exc)
        return events.error(command.id, PalaverError(ErrorCode.INTERNAL_ERROR, "internal error"))

    async def _execute(self, client: Client, command: protocol.Command) -> dict[str, Any] | None:
        services = self.services
        user = client.principal.user
        match command:
            case protocol.Send():
                await self._send(client, command)
                return None
            case protocol.Resume(cursors=cursors):
                client.resume(await self._bounded(client, cursors))
                return events.reply(command.id, "resumed", cursors=_str_keys(client.cursors))
            case protocol.Receipt(conversation_id=cid, seq=seq, read=read):
                self._require_tracked(client, cid)
                await services.messaging.mark(user.id, cid, seq, read=read)
                return None if command.id is None else events.reply(command.id, "result", ok=True)
            case protocol.Typing(conversation_id=cid, typing=typing):
                self._require_tracked(client, cid)
                await services.messaging.typing(user.id, cid, typing)
                return None
            case protocol.SetPresence(status=status):
                await self.hub.set_status(client, PresenceStatus(status))
                return None if command.id is None else events.reply(command.id, "result", ok=True)
            case protocol.Auth(token=token):
                return await self._reauth(client, command.id, token)
            case protocol.History(conversation_id=cid, before=before, after=after, limit=limit):
                page = await services.messaging.history(
                    user.id, cid, before=before, after=after, limit=limit
                )
                senders = await services.store.get_users(
                    {m.sender_id for m in page.messages if m.sender_id is not None}
                )
                frames = [
                    events.message(m, senders.get(m.sender_id) if m.sender_id else None)
                    for m in page.messages
                ]
                await services.rich.decorate(frames, page.messages, user.id)
                return events.reply(
                    command.id,
                    "history",
                    conversation_id=cid,
                    messages=frames,
                    has_more=len(page.messages) == limit,
                    gap={"from_seq": page.gap[0], "to_seq": page.gap[1]} if page.gap else None,
                )
            case protocol.JoinRoom(room=room):
                conversation, joined = await services.conversations.join_room(user, room)
                count = await services.store.count_members(conversation.id)
                return events.reply(
                    command.id,
                    "result",
                    conversation=events.conversation(conversation, count),
                    joined=joined,
                )
            case protocol.LeaveConversation(conversation_id=cid):
                await services.conversations.leave(user, cid)
                return events.reply(command.id, "result", ok=True)
            case protocol.CreateRoom(name=name, topic=topic):
                room_created = await services.conversations.create_room(user, name, topic)
                return events.reply(
                    command.id, "result", conversation=events.conversation(room_created, 1)
                )
            case protocol.ListRooms():
                rooms = await services.store.list_rooms()
                return events.reply(
                    command.id,
                    "rooms",
                    rooms=[events.conversation(r, count) for r, count in rooms],
                )
            case protocol.OnlineUsers():
                return await self._online_users(command.id, user.id)
            case protocol.Search():
                return await search_frame(services.search, user.id, command)
            case protocol.Moderate(op=op):
                return events.reply(command.id, "result", **await services.moderation.run(user, op))
        if isinstance(command, RICH_COMMANDS):
            return await rich_commands.execute(services, client, command)
        raise PalaverError(ErrorCode.UNKNOWN_TYPE, "unsupported command")

    async def _bounded(self, client: Client, cursors: dict[int, int]) -> dict[int, int]:
        """``cursors`` with none past its conversation's last message.

        A client can hold no more than was stored; one that claims more (a database
        restored from an older backup, a bug) would otherwise have every new message
        up to its cursor skipped as already held. The store is asked only about cursors
        past what this socket knows of, so a normal resume costs no query."""
        known = client.last_seqs or {}
        doubtful = [
            cid
            for cid, seq in cursors.items()
            if cid in client.cursors and seq > max(known.get(cid, 0), client.cursors[cid])
        ]
        if not doubtful:
            return cursors
        last = await self.services.store.last_seqs(doubtful)
        return {cid: min(seq, last.get(cid, seq)) for cid, seq in cursors.items()}

    def _require_tracked(self, client: Client, conversation_id: int) -> None:
        if conversation_id not in client.cursors:
            raise PalaverError(ErrorCode.NOT_FOUND, "conversation not found")

    async def _send(self, client: Client, command: protocol.Send) -> None:
        """Send and ack (an error is raised, for the caller to reply)."""
        services = self.services
        user = client.principal.user
        cid = command.conversation_id
        if cid is None:
            assert command.to is not None
            conversation, _ = await services.conversations.direct(user, command.to)
            cid = conversation.id
        member_checked = cid in client.cursors
        attachments: list[dict[str, Any]] = []
        if command.attachments:
            # Membership first: an outsider must not bind uploads to the conversation.
            if not member_checked:
                await services.messaging.require_member(cid, user.id)
                member_checked = True
            attachments = await services.uploads.attach(user.id, cid, command.attachments)

        answered = False

        def acked(appended: Appended) -> None:
            # In the commit's turn, before any coroutine resumes: whatever else writes
            # the message to this socket (the announcement, a catch-up, which also
            # waits for send_settled) finds the ack ahead of it.
            nonlocal answered
            client.send_with_next(events.ack(command.id, appended.message, appended.duplicate))
            answered = True
            client.send_settled(cid)

        client.send_started(cid)
        try:
            appended = await services.messaging.send(
                user,
                cid,
                command.content,
                client_msg_id=command.client_msg_id,
                member_checked=member_checked,
                attachments=tuple(attachments),
                reply_to_id=command.reply_to_id,
                thread_root_id=command.thread_root_id,
                on_commit=acked,
            )
            if not answered:  # on_commit failed (logged): late rather than never
                client.send_with_next(events.ack(command.id, appended.message, appended.duplicate))
        except PalaverError as exc:
            self._doubt_membership(client, cid, exc)
            raise
        finally:
            if not answered:
                client.send_settled(cid)

    def _doubt_membership(self, client: Client, cid: int, error: BaseException) -> None:
        """The store refused a send to a conversation this socket follows: the user
        is no longer a member and the signal was lost. Check now rather than at the
        next periodic check, so the socket stops reading it (and sending to it, each
        refusal costing its whole batch a retry one by one)."""
        if (
            isinstance(error, PalaverError)
            and error.code is ErrorCode.NOT_FOUND
            and cid in client.cursors
        ):
            self.hub.spawn(self.hub.check_memberships([client.user_id]))

    async def _reauth(self, client: Client, cid: str | int | None, token: str) -> dict[str, Any]:
        try:
            principal = await self.services.auth.authenticate(token)
        except PalaverError as exc:
            client.send(events.error(cid, exc))
            self.hub.drop(client, CLOSE_TOKEN_EXPIRED, "re-authentication failed")
            raise
        if (
            principal.user.id != client.principal.user.id
            or principal.session.id != client.principal.session.id
        ):
            raise PalaverError(ErrorCode.FORBIDDEN, "the token belongs to another session")
        client.principal = principal
        return events.reply(cid, "auth_ok", token_expires_at=principal.token_expires_at * 1000)

    async def _online_users(self, cid: str | int | None, user_id: int) -> dict[str, Any]:
        services = self.services
        if services.settings.presence_visibility == "everyone":
            candidates = set(self.hub.by_user)
            candidates.update(await services.store.contacts(user_id))
        else:
            candidates = await services.store.contacts(user_id)
        candidates -= services.moderation.state.blocked_by.get(user_id, set())
        presence = await services.broker.get_presence(candidates)
        online = sorted(uid for uid, status in presence.items() if status != "offline")
        users = await services.store.get_users(online)
        return events.reply(
            cid,
            "online_users",
            users=[
                {
                    "id": uid,
                    "username": users[uid].username if uid in users else None,
                    "display_name": users[uid].handle if uid in users else None,
                    "status": presence[uid].value,
                }
                for uid in online
            ],
        )


def _str_keys(cursors: dict[int, int]) -> dict[str, int]:
    return {str(k): v for k, v in cursors.items()}
