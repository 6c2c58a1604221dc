"""Chat Service's protocol: rooms over a raw WebSocket at
``/compat/chat-service/ws?token=…&roomId=…`` (or ``Authorization: Bearer``).

The socket joins ``roomId`` (default ``lobby``) on connect and receives the messages,
typing indicators of the rooms it joined, and the presence of the people it shares a
conversation with. An invalid token closes the connection at once (1008).
"""

from __future__ import annotations

from typing import Any

from palaver.compat.bridge import Frame, iso, join_or_create, mark_delivered
from palaver.compat.raw import RawDialect, RawSocket
from palaver.core.errors import ErrorCode, PalaverError, not_found
from palaver.core.models import MessageKind
from palaver.core.protocol import check_content
from palaver.gateway.lean import Accept, Reject, Request

PATH = "/compat/chat-service/ws"
DEFAULT_ROOM = "lobby"
# Policy violation: what the seed's server sends when it drops a bad token.
CLOSE_INVALID_TOKEN = 1008


class ChatServiceHandler(RawDialect):
    """Seed 001's frames over Palaver's rooms."""

    def refuse(self, status: int, code: str, message: str) -> Accept | Reject:
        # The seed accepts the socket and disconnects it at once; browsers then see a
        # close code instead of an anonymous handshake failure.
        sock = RawSocket("")
        sock.extra["refused"] = message
        return Accept(state=sock)

    def prepare(self, sock: RawSocket, request: Request) -> None:
        sock.extra["initial"] = request.query.get("roomId") or DEFAULT_ROOM
        sock.extra["rooms"] = set()

    def opened(self, sock: RawSocket) -> None:
        refused = sock.extra.get("refused")
        if refused is not None:
            assert sock.conn is not None
            sock.conn.close(CLOSE_INVALID_TOKEN, str(refused)[:100])
            return
        self.enqueue(sock, {"type": "join_room", "roomId": sock.extra["initial"]})

    def fail(self, sock: RawSocket, error: PalaverError, frame: Frame | None = None) -> None:
        out: dict[str, Any] = {"type": "error", **error.to_dict()}
        sock.send(out)

    def _room(self, sock: RawSocket, frame: Frame) -> int:
        name = frame.get("roomId")
        if not isinstance(name, str) or not name:
            raise PalaverError(ErrorCode.INVALID_FORMAT, "roomId is required", field="roomId")
        cid = sock.room_named(name)
        if cid is None:
            raise not_found("room")
        return cid

    async def handle(self, sock: RawSocket, frame: Frame) -> None:
        self.require_client(sock)
        assert sock.principal is not None
        user = sock.principal.user
        services = self.services
        rooms: set[int] = sock.extra["rooms"]
        kind = frame["type"]
        if kind == "message":
            cid = self._room(sock, frame)
            content = check_content(frame.get("content"), self.settings.max_message_length)
            assert sock.client is not None
            await services.messaging.send(
                user, cid, content, member_checked=cid in sock.client.cursors
            )
        elif kind == "join_room":
            name = frame.get("roomId")
            if not isinstance(name, str):
                raise PalaverError(ErrorCode.INVALID_FORMAT, "roomId is required", field="roomId")
            room = await join_or_create(services, user, name)
            sock.remember(room)
            rooms.add(room.id)
            count = await services.store.count_members(room.id)
            sock.send({"type": "room_joined", "roomId": room.name, "memberCount": count})
        elif kind == "leave_room":
            cid = self._room(sock, frame)
            name = sock.conversations[cid].name
            await services.conversations.leave(user, cid)
            rooms.discard(cid)
            sock.send({"type": "room_left", "roomId": name})
        elif kind == "typing":
            cid = self._room(sock, frame)
            await services.messaging.typing(user.id, cid, frame.get("isTyping", True) is not False)
        else:
            raise PalaverError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:64]!r}")

    async def translate(self, sock: RawSocket, event: Frame) -> list[Frame]:
        kind = event.get("type")
        rooms: set[int] = sock.extra["rooms"]
        if kind == "message":
            cid = int(event["conversation_id"])
            if cid not in rooms or event.get("kind") != MessageKind.TEXT.value:
                return []
            mark_delivered(sock, event)
            return [
                {
                    "type": "message",
                    "messageId": event["message_id"],
                    "userId": event["sender_id"],
                    "username": event["sender"],
                    "roomId": sock.conversations[cid].name,
                    "content": event["content"],
                    "timestamp": iso(event["created_at"]),
                }
            ]
        if kind == "typing":
            cid = int(event["conversation_id"])
            if cid not in rooms or event["user_id"] == sock.user_id:
                return []
            return [
                {
                    "type": "typing_indicator",
                    "userId": event["user_id"],
                    "roomId": sock.conversations[cid].name,
                    "isTyping": bool(event["typing"]),
                }
            ]
        if kind == "presence" and event.get("user_id") != sock.user_id:
            status = "offline" if event.get("status") == "offline" else "online"
            return [{"type": "presence", "userId": event["user_id"], "status": status}]
        if kind == "left":
            rooms.discard(int(event["conversation_id"]))
        return []
