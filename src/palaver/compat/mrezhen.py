"""Mrezhen's protocol: direct messages over a raw WebSocket at ``/compat/mrezhen/ws``.

The token is checked on the upgrade request (401 before the handshake completes), the
sender is always the token's user, errors carry exactly Mrezhen's ten codes, and a
message sent to someone offline waits in the store and reaches them on their next
connection marked ``queued``.
"""

from __future__ import annotations

from typing import Any

from palaver.compat.bridge import (
    Frame,
    as_palaver_error,
    conversation_of,
    is_online,
    iso,
    mark_delivered,
    online_user_ids,
    user_ref,
)
from palaver.compat.raw import RawDialect, RawSocket
from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import ConversationKind, ConversationSummary, MessageKind, now_ms
from palaver.core.protocol import check_content

PATH = "/compat/mrezhen/ws"

# Mrezhen's error codes, verbatim; any other refusal is told as the nearest of them.
CODES = frozenset(
    {
        ErrorCode.INVALID_JSON,
        ErrorCode.INVALID_FORMAT,
        ErrorCode.MISSING_TYPE,
        ErrorCode.UNKNOWN_TYPE,
        ErrorCode.MISSING_RECIPIENT,
        ErrorCode.EMPTY_CONTENT,
        ErrorCode.CONTENT_TOO_LONG,
        ErrorCode.SELF_MESSAGE,
        ErrorCode.RATE_LIMITED,
        ErrorCode.INTERNAL_ERROR,
    }
)
_NEAREST = {
    # An unknown recipient: Mrezhen has no user registry to say "no such user" with.
    ErrorCode.NOT_FOUND: ErrorCode.MISSING_RECIPIENT,
    ErrorCode.VALIDATION_ERROR: ErrorCode.INVALID_FORMAT,
}
HISTORY_DEFAULT = 50
HISTORY_MAX = 200


def mrezhen_code(code: ErrorCode) -> ErrorCode:
    """The Mrezhen code a Palaver refusal is reported with."""
    if code in CODES:
        return code
    return _NEAREST.get(code, ErrorCode.INTERNAL_ERROR)


class MrezhenHandler(RawDialect):
    """Seed 004's frames over Palaver's direct conversations."""

    def fail(self, sock: RawSocket, error: PalaverError, frame: Frame | None = None) -> None:
        out: dict[str, Any] = {
            "type": "error",
            "code": mrezhen_code(error.code).value,
            "message": error.message,
        }
        if error.retry_after is not None:
            out["retryAfter"] = error.retry_after
        sock.send(out)

    def backlog(self, summary: ConversationSummary) -> bool:
        return summary.conversation.kind is ConversationKind.DIRECT

    async def handle(self, sock: RawSocket, frame: Frame) -> None:
        kind = frame["type"]
        if kind == "ping":
            sock.send({"type": "pong", "timestamp": iso(now_ms())})
        elif kind == "direct_message":
            await self._direct_message(sock, frame)
        elif kind == "get_history":
            await self._history(sock, frame)
        elif kind == "get_online_users":
            users = await online_user_ids(self.services, self.hub, sock.user_id)
            sock.send({"type": "online_users", "users": users})
        else:
            raise PalaverError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:64]!r}")

    async def _direct_message(self, sock: RawSocket, frame: Frame) -> None:
        ref = user_ref(frame.get("to"))
        if ref is None:
            raise PalaverError(ErrorCode.MISSING_RECIPIENT, "to is required", field="to")
        content = check_content(frame.get("content"), self.settings.max_message_length)
        assert sock.principal is not None
        assert sock.client is not None
        me = sock.principal.user
        services = self.services
        other = await services.conversations.resolve_user(ref)
        conversation, _ = await services.conversations.direct(me, other.id)
        appended = await services.messaging.send(
            me, conversation.id, content, member_checked=conversation.id in sock.client.cursors
        )
        online = await is_online(services, other.id)
        sock.send(
            {
                "type": "message_ack",
                "messageId": appended.message.id,
                "to": frame.get("to"),
                "timestamp": iso(appended.message.created_at),
                "status": "delivered" if online else "queued",
            }
        )

    async def _history(self, sock: RawSocket, frame: Frame) -> None:
        ref = user_ref(frame.get("with"))
        if ref is None:
            raise PalaverError(ErrorCode.MISSING_RECIPIENT, "with is required", field="with")
        limit = frame.get("limit", HISTORY_DEFAULT)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise PalaverError(ErrorCode.INVALID_FORMAT, "limit must be a positive integer")
        assert sock.principal is not None
        services = self.services
        conversation, _ = await services.conversations.direct(sock.principal.user, ref)
        page = await services.messaging.history(
            sock.user_id, conversation.id, limit=min(limit, HISTORY_MAX)
        )
        sock.send(
            {
                "type": "message_history",
                "with": frame.get("with"),
                "messages": [
                    {
                        "id": m.id,
                        "from": m.sender_id,
                        "content": m.content,
                        "timestamp": iso(m.created_at),
                    }
                    for m in page.messages
                    if m.kind is MessageKind.TEXT
                ],
            }
        )

    async def translate(self, sock: RawSocket, event: Frame) -> list[Frame]:
        kind = event.get("type")
        if kind == "message":
            conv = await conversation_of(self.services, sock, int(event["conversation_id"]))
            if (
                conv is None
                or conv.kind != ConversationKind.DIRECT.value
                or event.get("kind") != MessageKind.TEXT.value
                or event.get("sender_id") == sock.user_id
            ):
                return []
            mark_delivered(sock, event)
            out: Frame = {
                "type": "direct_message",
                "message": {
                    "id": event["message_id"],
                    "from": event["sender_id"],
                    "content": event["content"],
                    "timestamp": iso(event["created_at"]),
                },
            }
            if event["created_at"] < sock.opened_at:
                out["queued"] = True
            return [out]
        if kind == "presence" and event.get("user_id") != sock.user_id:
            try:
                online = await online_user_ids(self.services, self.hub, sock.user_id)
            except Exception as exc:
                as_palaver_error(exc)
                online = []
            return [
                {
                    "type": "presence",
                    "userId": event["user_id"],
                    "status": "offline" if event.get("status") == "offline" else "online",
                    "onlineUsers": online,
                }
            ]
        return []
