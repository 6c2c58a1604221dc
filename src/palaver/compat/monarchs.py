"""The Monarchs protocol: accounts, rooms and private messages over a raw WebSocket at
``/compat/monarchs/ws``.

The socket opens without a token; ``register`` and ``login`` run over it (a token in
the query or an ``Authorization`` header logs the socket in at once). A socket is in
at most one room at a time: ``message`` goes to it and only its messages are shown.
"""

from __future__ import annotations

from palaver.compat.bridge import (
    Frame,
    conversation_of,
    iso,
    mark_delivered,
    online_user_ids,
    user_ref,
)
from palaver.compat.raw import RawDialect, RawSocket
from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import ConversationKind, MessageKind
from palaver.core.protocol import check_content

PATH = "/compat/monarchs/ws"


def _text(frame: Frame, name: str) -> str:
    value = frame.get(name)
    if not isinstance(value, str) or not value.strip():
        raise PalaverError(ErrorCode.INVALID_FORMAT, f"{name} is required", field=name)
    return value


class MonarchsHandler(RawDialect):
    """Seed 000's frames over Palaver's accounts, rooms and direct conversations."""

    token_required = False

    def fail(self, sock: RawSocket, error: PalaverError, frame: Frame | None = None) -> None:
        sock.send({"type": "error", "content": error.message, "code": error.code.value})

    @staticmethod
    def _success(sock: RawSocket, content: str, **extra: object) -> None:
        sock.send({"type": "success", "content": content, **extra})

    async def handle(self, sock: RawSocket, frame: Frame) -> None:
        kind = frame["type"]
        services = self.services
        if kind == "register":
            await services.auth.register(
                username=_text(frame, "username"),
                email=None,
                password=_text(frame, "password"),
                ip=sock.ip,
            )
            services.metrics.registrations.inc()
            self._success(sock, "Registration successful! You can now log in.")
            return
        if kind == "login":
            await self._login(sock, frame)
            return
        if kind not in _AUTHENTICATED:
            raise PalaverError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:64]!r}")
        self.require_client(sock)
        assert sock.principal is not None
        assert sock.client is not None
        user = sock.principal.user
        conversations = services.conversations
        current: int | None = sock.extra.get("room")
        if kind == "create_room":
            room = await conversations.create_room(user, _text(frame, "room_name"))
            sock.remember(room)
            sock.extra["room"] = room.id
            self._success(sock, f"Room '{room.name}' created and joined.")
        elif kind == "join_room":
            room, _ = await conversations.join_room(user, _text(frame, "room_name").strip())
            sock.remember(room)
            sock.extra["room"] = room.id
            self._success(sock, f"Joined room '{room.name}'.")
        elif kind == "leave":
            if current is None or current not in sock.conversations:
                raise PalaverError(ErrorCode.NOT_FOUND, "You are not in a room.")
            name = sock.conversations[current].name
            await conversations.leave(user, current)
            sock.extra["room"] = None
            self._success(sock, f"Left room '{name}'.")
        elif kind == "message":
            if current is None or current not in sock.conversations:
                raise PalaverError(ErrorCode.NOT_FOUND, "You are not in a room.")
            content = check_content(frame.get("content"), self.settings.max_message_length)
            await services.messaging.send(
                user, current, content, member_checked=current in sock.client.cursors
            )
        elif kind == "private":
            ref = user_ref(frame.get("to_user"))
            if ref is None:
                raise PalaverError(ErrorCode.MISSING_RECIPIENT, "to_user is required")
            content = check_content(frame.get("content"), self.settings.max_message_length)
            conversation, _ = await conversations.direct(user, ref)
            await services.messaging.send(
                user,
                conversation.id,
                content,
                member_checked=conversation.id in sock.client.cursors,
            )
            self._success(sock, f"Private message sent to {ref}.")
        elif kind == "get_rooms":
            rooms = await services.store.list_rooms()
            sock.send(
                {
                    "type": "rooms",
                    "rooms": [{"name": room.name, "members": count} for room, count in rooms],
                }
            )
        elif kind == "get_users":
            online = await online_user_ids(services, self.hub, user.id)
            users = await services.store.get_users(online)
            sock.send(
                {
                    "type": "users",
                    "users": [
                        users[uid].username or users[uid].handle for uid in online if uid in users
                    ],
                }
            )

    async def _login(self, sock: RawSocket, frame: Frame) -> None:
        if sock.client is not None:
            raise PalaverError(ErrorCode.CONFLICT, "already logged in on this connection")
        services = self.services
        try:
            result = await services.auth.login(
                _text(frame, "username"), _text(frame, "password"), ip=sock.ip, device="monarchs"
            )
        except PalaverError as exc:
            services.metrics.logins.labels(outcome=exc.code.value.lower()).inc()
            raise
        services.metrics.logins.labels(outcome="success").inc()
        principal = await services.auth.authenticate(result.access_token)
        summaries = await services.store.list_user_conversations(principal.user.id)
        if sock.conn is None or not sock.conn.is_open:
            return
        sock.principal = principal
        self._success(
            sock,
            "Login successful!",
            token=result.access_token,
            expiresIn=result.expires_in * 1000,
        )
        self.attach(sock, summaries)

    async def translate(self, sock: RawSocket, event: Frame) -> list[Frame]:
        if event.get("type") != "message":
            return []
        cid = int(event["conversation_id"])
        conv = await conversation_of(self.services, sock, cid)
        if conv is None:
            return []
        if conv.kind == ConversationKind.DIRECT.value:
            if event.get("sender_id") == sock.user_id or event["kind"] != MessageKind.TEXT.value:
                return []
            mark_delivered(sock, event)
            return [
                {
                    "type": "private",
                    "from": event["sender"],
                    "content": event["content"],
                    "timestamp": iso(event["created_at"]),
                }
            ]
        if cid != sock.extra.get("room"):
            return []
        if event["kind"] == MessageKind.SYSTEM.value:
            return [{"type": "system", "room": conv.name, "content": event["content"]}]
        mark_delivered(sock, event)
        return [
            {
                "type": "message",
                "room": conv.name,
                "from": event["sender"],
                "content": event["content"],
                "timestamp": iso(event["created_at"]),
            }
        ]


_AUTHENTICATED = frozenset(
    {"create_room", "join_room", "leave", "message", "private", "get_rooms", "get_users"}
)
