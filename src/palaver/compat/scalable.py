"""The Scalable Chat Application's Socket.IO events over Palaver's conversations.

Clients send ``conversation:join``, ``message:send``, ``message:read``,
``message:delivered``, ``typing:start`` and ``typing:stop``; the server sends
``message:new``, ``message:read``, ``message:delivered``, ``typing:start``,
``typing:stop``, ``user:online`` and ``user:offline``. Payloads use the seed's column
names (``conversation_id``, ``sender_id``, ``created_at``...) for messages and
camelCase for the other events.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any
from urllib.parse import urlsplit

from palaver.compat.bridge import Frame, iso, mark_delivered
from palaver.compat.sio_base import Handler, SioSocket, require_dict
from palaver.core.errors import ErrorCode, PalaverError, not_found
from palaver.core.models import MessageKind, now_ms
from palaver.core.protocol import check_content
from palaver.services.container import Services


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _conversation_id(data: Any) -> int:
    if isinstance(data, dict):
        named = data.get("conversationId"), data.get("conversation_id")
        if None not in named and _int(named[0]) != _int(named[1]):
            # Two spellings of one field that disagree: refuse rather than pick one.
            raise PalaverError(
                ErrorCode.INVALID_FORMAT,
                "conversationId and conversation_id differ: give one of them",
                field="conversationId",
            )
        value = data.get("conversationId", data.get("conversation_id", data.get("id")))
    else:
        value = data
    cid = _int(value)
    if cid is None:
        raise PalaverError(
            ErrorCode.INVALID_FORMAT, "conversationId is required", field="conversationId"
        )
    return cid


async def _member(services: Services, sock: SioSocket, cid: int) -> None:
    """``NOT_FOUND`` unless the user belongs to the conversation."""
    assert sock.client is not None
    if cid in sock.client.cursors:
        return
    conversation, _ = await services.conversations.get(sock.user_id, cid)
    sock.remember(conversation)


def message_payload(event: Frame) -> Frame:
    """A native ``message`` frame in the seed's shape: ``message_type`` and
    ``file_url`` come from the first attachment (the seed's messages carry one file);
    ``attachments`` lists them all, as on the native protocol."""
    attachments = event.get("attachments") or []
    first = attachments[0] if attachments else None
    payload: Frame = {
        "id": event["message_id"],
        "conversation_id": event["conversation_id"],
        "sender_id": event["sender_id"],
        "sender_username": event["sender"],
        "content": event["content"],
        "message_type": _message_type(first),
        "file_url": f"/api/uploads/{first['id']}" if first else None,
        "created_at": iso(event["created_at"]),
        "seq": event["seq"],
    }
    if attachments:
        payload["attachments"] = attachments
    return payload


def _message_type(attachment: dict[str, Any] | None) -> str:
    if attachment is None:
        return "text"
    return "image" if str(attachment.get("type", "")).startswith("image/") else "file"


MESSAGE_TYPES = ("text", "image", "file")
_UPLOAD_PATH = re.compile(r"^/api/uploads/(\d{1,18})/?$")


def _upload_id(sock: SioSocket, settings_url: str, body: dict[str, Any]) -> int | None:
    """The upload a ``message:send`` carries: ``uploadId``, or ``fileUrl`` as
    ``POST /api/upload`` returned it (``/api/uploads/17``, or that path on this
    server's own address). Anything else is ``INVALID_FORMAT``: Palaver never fetches
    or links a file from elsewhere."""
    raw_id = body.get("uploadId", body.get("upload_id"))
    url = body.get("fileUrl", body.get("file_url"))
    if raw_id is not None:
        upload_id = _int(raw_id)
        if upload_id is None:
            raise PalaverError(
                ErrorCode.INVALID_FORMAT, "uploadId must be an integer", field="uploadId"
            )
        return upload_id
    if url is None or url == "":
        return None
    if not isinstance(url, str):
        raise PalaverError(ErrorCode.INVALID_FORMAT, "fileUrl must be a string", field="fileUrl")
    parts = urlsplit(url.strip())
    if parts.scheme or parts.netloc:
        own = {sock.host, urlsplit(settings_url).netloc.lower()} - {""}
        if parts.scheme not in ("http", "https") or parts.netloc.lower() not in own:
            raise PalaverError(
                ErrorCode.INVALID_FORMAT,
                "fileUrl must be the url POST /api/upload returned",
                field="fileUrl",
            )
    match = _UPLOAD_PATH.match(parts.path)
    if match is None or parts.query or parts.fragment:
        raise PalaverError(
            ErrorCode.INVALID_FORMAT,
            "fileUrl must be the url POST /api/upload returned",
            field="fileUrl",
        )
    return int(match.group(1))


# The longest key a send is stored under (the native ``client_msg_id``).
MAX_CLIENT_MSG_ID = 64
# The prefix of a key that stands for a tempId by its digest.
DIGEST_PREFIX = "sha256:"


def client_msg_id(temp: object) -> str | None:
    """The key a ``message:send`` is stored under for its ``tempId``: the tempId itself
    (a number as its decimal digits), or, when that is longer than the store's 64
    characters or begins with ``sha256:``, ``sha256:`` and the base64url SHA-256 digest
    of the whole tempId (50 characters). Distinct tempIds have distinct keys (a tempId
    kept as it is never begins with ``sha256:``, a digest always does) and one tempId
    always has the same key. ``None`` (no idempotency) without a usable tempId."""
    if isinstance(temp, bool) or not isinstance(temp, str | int) or temp == "":
        return None
    text = str(temp)
    if len(text) <= MAX_CLIENT_MSG_ID and not text.startswith(DIGEST_PREFIX):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
    return DIGEST_PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


async def conversation_join(services: Services, sock: SioSocket, data: Any) -> dict[str, Any]:
    cid = _conversation_id(data)
    await _member(services, sock, cid)
    return {"success": True, "conversationId": cid}


async def message_send(services: Services, sock: SioSocket, data: Any) -> dict[str, Any]:
    """Send to a conversation; the acknowledgement carries the stored message. A
    ``tempId`` makes retries idempotent (the original message comes back)."""
    assert sock.principal is not None
    assert sock.client is not None
    body = require_dict(data, "conversationId", "content")
    cid = _conversation_id(body)
    upload_id = _upload_id(sock, services.settings.public_url, body)
    kind = body.get("messageType", body.get("message_type"))
    if kind is not None and kind not in MESSAGE_TYPES:
        raise PalaverError(
            ErrorCode.INVALID_FORMAT,
            "messageType must be text, image or file",
            field="messageType",
        )
    if kind in ("image", "file") and upload_id is None:
        raise PalaverError(
            ErrorCode.INVALID_FORMAT,
            f"messageType {kind} needs fileUrl or uploadId",
            field="fileUrl",
        )
    content = check_content(
        body.get("content"),
        services.settings.max_message_length,
        allow_empty=upload_id is not None,
    )
    temp = body.get("tempId")
    key = client_msg_id(temp)
    member_checked = cid in sock.client.cursors
    attachments: list[dict[str, Any]] = []
    if upload_id is not None:
        if not member_checked:
            # An outsider learns nothing about the upload: the conversation is missing.
            await services.messaging.require_member(cid, sock.user_id)
            member_checked = True
        attachments = await services.uploads.attach(sock.user_id, cid, [upload_id])
    appended = await services.messaging.send(
        sock.principal.user,
        cid,
        content,
        client_msg_id=key,
        member_checked=member_checked,
        attachments=tuple(attachments),
    )
    m = appended.message
    payload = message_payload(
        {
            "message_id": m.id,
            "conversation_id": m.conversation_id,
            "sender_id": m.sender_id,
            "sender": sock.principal.user.username,
            "content": m.content,
            "created_at": m.created_at,
            "seq": m.seq,
            "attachments": list(m.attachments),
        }
    )
    return {"success": True, "message": payload, "tempId": temp, "duplicate": appended.duplicate}


async def _receipt(services: Services, sock: SioSocket, data: Any, *, read: bool) -> Frame:
    body = require_dict(data, "messageId")
    message_id = _int(body.get("messageId", body.get("message_id")))
    if message_id is None:
        raise PalaverError(ErrorCode.INVALID_FORMAT, "messageId is required", field="messageId")
    message = await services.store.get_message(message_id)
    # Outsiders learn nothing: a message of someone else's conversation is "not found",
    # with the same words as one that does not exist.
    if (
        message is None
        or await services.store.get_member(message.conversation_id, sock.user_id) is None
    ):
        raise not_found("message")
    await services.messaging.mark(sock.user_id, message.conversation_id, message.seq, read=read)
    return {"success": True}


async def message_read(services: Services, sock: SioSocket, data: Any) -> Frame:
    return await _receipt(services, sock, data, read=True)


async def message_delivered(services: Services, sock: SioSocket, data: Any) -> Frame:
    return await _receipt(services, sock, data, read=False)


async def _typing(services: Services, sock: SioSocket, data: Any, typing: bool) -> None:
    cid = _conversation_id(data)
    await _member(services, sock, cid)
    await services.messaging.typing(sock.user_id, cid, typing)


async def typing_start(services: Services, sock: SioSocket, data: Any) -> None:
    await _typing(services, sock, data, True)


async def typing_stop(services: Services, sock: SioSocket, data: Any) -> None:
    await _typing(services, sock, data, False)


EVENTS: dict[str, Handler] = {
    "conversation:join": conversation_join,
    "message:send": message_send,
    "message:read": message_read,
    "message:delivered": message_delivered,
    "typing:start": typing_start,
    "typing:stop": typing_stop,
}


async def translate(services: Services, sock: SioSocket, event: Frame) -> list[tuple[str, Frame]]:
    """Seed 003 events, for every conversation of the user (a new direct conversation
    can then be shown before the client has joined it)."""
    kind = event.get("type")
    if kind == "presence":
        if event["user_id"] == sock.user_id:
            return []
        if event["status"] == "offline":
            return [
                (
                    "user:offline",
                    {"userId": event["user_id"], "lastSeen": iso(event.get("last_seen_at"))},
                )
            ]
        return [("user:online", {"userId": event["user_id"]})]
    if kind == "message":
        if event["kind"] != MessageKind.TEXT.value:
            return []
        mark_delivered(sock, event)
        return [("message:new", message_payload(event))]
    if kind == "typing":
        if event["user_id"] == sock.user_id:
            return []
        user = await services.users.get(event["user_id"])
        return [
            (
                "typing:start" if event["typing"] else "typing:stop",
                {
                    "conversationId": event["conversation_id"],
                    "userId": event["user_id"],
                    "username": user.username if user else None,
                },
            )
        ]
    if kind == "receipt" and event["user_id"] != sock.user_id:
        return await _receipts(services, sock, event)
    return []


async def _receipts(services: Services, sock: SioSocket, event: Frame) -> list[tuple[str, Frame]]:
    """A cursor move as the seed's per-message events: the message at the new cursor
    (every message before it is read or delivered too)."""
    cid, user_id = int(event["conversation_id"]), int(event["user_id"])
    read, delivered = int(event["read_seq"] or 0), int(event["delivered_seq"] or 0)
    told_read, told_delivered = sock.receipts.get((cid, user_id), (0, 0))
    sock.receipts[(cid, user_id)] = (max(read, told_read), max(delivered, told_delivered))
    out: list[tuple[str, Frame]] = []
    at = iso(now_ms())
    for name, seq, told, stamp in (
        ("message:delivered", delivered, told_delivered, "deliveredAt"),
        ("message:read", read, told_read, "readAt"),
    ):
        if seq <= told:
            continue
        found = await services.store.get_messages(cid, after_seq=seq - 1, limit=1)
        out.append(
            (
                name,
                {
                    "conversationId": cid,
                    "userId": user_id,
                    "messageId": found[0].id if found else None,
                    "seq": seq,
                    stamp: at,
                },
            )
        )
    return out
