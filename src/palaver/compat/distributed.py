"""The Distributed Real-Time Chat Platform's Socket.IO events: ``join_room`` and
``send_message`` from clients, ``message`` and ``system`` from the server.

Its REST API (register by e-mail, login returning ``token``, ``GET /api/messages/:room``
in the same message shape) is Palaver's own.
"""

from __future__ import annotations

from typing import Any

from palaver.compat.bridge import Frame, iso, join_or_create, mark_delivered
from palaver.compat.sio_base import Handler, SioSocket, require_dict
from palaver.core.errors import ErrorCode, PalaverError, not_found
from palaver.core.models import MessageKind
from palaver.core.privacy import sender_address
from palaver.core.protocol import check_content
from palaver.services.container import Services


def _room_name(data: Any) -> str:
    name = data if isinstance(data, str) else require_dict(data, "room").get("room")
    if not isinstance(name, str) or not name.strip():
        raise PalaverError(ErrorCode.INVALID_FORMAT, "room is required", field="room")
    return name.strip()


async def join_room(services: Services, sock: SioSocket, data: Any) -> dict[str, Any]:
    """Enter a room by name (created when nobody has used the name yet)."""
    assert sock.principal is not None
    room = await join_or_create(services, sock.principal.user, _room_name(data))
    sock.remember(room)
    sock.rooms.add(room.id)
    return {"ok": True, "room": room.name}


async def send_message(services: Services, sock: SioSocket, data: Any) -> dict[str, Any]:
    """Send to a room the user is in; answered (if asked) once durably stored."""
    assert sock.principal is not None
    assert sock.client is not None
    body = require_dict(data, "room", "content")
    cid = sock.room_named(_room_name(body))
    if cid is None:
        raise not_found("room")
    content = check_content(body.get("content"), services.settings.max_message_length)
    appended = await services.messaging.send(
        sock.principal.user, cid, content, member_checked=cid in sock.client.cursors
    )
    return {"ok": True, "id": appended.message.id, "createdAt": iso(appended.message.created_at)}


EVENTS: dict[str, Handler] = {"join_room": join_room, "send_message": send_message}


async def translate(services: Services, sock: SioSocket, event: Frame) -> list[tuple[str, Frame]]:
    """``message`` and ``system`` events for the rooms this socket joined."""
    if event.get("type") != "message":
        return []
    cid = int(event["conversation_id"])
    if cid not in sock.rooms:
        return []
    if event["kind"] == MessageKind.SYSTEM.value:
        return [("system", {"message": event["content"]})]
    mark_delivered(sock, event)
    sender = await services.users.get(event["sender_id"]) if event["sender_id"] else None
    return [
        (
            "message",
            {
                "id": event["message_id"],
                "room": sock.conversations[cid].name,
                "senderEmail": sender_address(
                    sender,
                    sock.principal.user.id if sock.principal else 0,
                    expose_emails=services.settings.expose_emails,
                ),
                "content": event["content"],
                "createdAt": iso(event["created_at"]),
            },
        )
    ]
