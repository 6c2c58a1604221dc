"""Server-to-client frames (and the broker payloads they travel in) as plain dicts.

A message frame carries nothing recipient-specific, so the transport encodes it once and
writes the same bytes to every connection that receives it.
"""

from __future__ import annotations

from typing import Any

from palaver.core.errors import PalaverError
from palaver.core.models import Conversation, ConversationSummary, Member, Message, User
from palaver.core.moderation import member_state, notifications


def message(m: Message, sender: User | None) -> dict[str, Any]:
    frame: dict[str, Any] = {
        "type": "message",
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        # Not "id": in server frames "id" only ever echoes a client command's id.
        "message_id": m.id,
        "sender_id": m.sender_id,
        "sender": sender.username if sender else None,
        "sender_name": sender.handle if sender else None,
        "kind": m.kind.value,
        "content": m.content,
        "created_at": m.created_at,
        "client_msg_id": m.client_msg_id,
    }
    # Optional fields only when set, so a plain message's frame stays as small as ever.
    if m.ref_id is not None:
        frame["ref_id"] = m.ref_id
    if m.reply_to_id is not None:
        frame["reply_to_id"] = m.reply_to_id
    if m.thread_root_id is not None:
        frame["thread_root_id"] = m.thread_root_id
    if m.edited_at is not None:
        frame["edited_at"] = m.edited_at
    if m.deleted_at is not None:
        frame["deleted_at"] = m.deleted_at
    if m.attachments:
        frame["attachments"] = list(m.attachments)
    if m.mentions:
        frame["mentions"] = list(m.mentions)
    return frame


def ack(cid: str | int | None, m: Message, duplicate: bool) -> dict[str, Any]:
    return {
        "type": "ack",
        "id": cid,
        "message_id": m.id,
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "client_msg_id": m.client_msg_id,
        "created_at": m.created_at,
        "duplicate": duplicate,
    }


def error(cid: str | int | None, err: PalaverError) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", **err.to_dict()}
    if cid is not None:
        frame["id"] = cid
    return frame


def reply(cid: str | int | None, kind: str, **fields: Any) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": kind, **fields}
    if cid is not None:
        frame["id"] = cid
    return frame


def receipt(member: Member) -> dict[str, Any]:
    return {
        "type": "receipt",
        "conversation_id": member.conversation_id,
        "user_id": member.user_id,
        "read_seq": member.read_seq,
        "delivered_seq": member.delivered_seq,
    }


def member_updated(member: Member) -> dict[str, Any]:
    """A member's role or moderation state changed (every member's sockets get it)."""
    return {
        "type": "member_updated",
        "conversation_id": member.conversation_id,
        "user_id": member.user_id,
        "role": member.role.value,
        **member_state(member),
    }


def typing(conversation_id: int, user_id: int, is_typing: bool, ttl: float) -> dict[str, Any]:
    return {
        "type": "typing",
        "conversation_id": conversation_id,
        "user_id": user_id,
        "typing": is_typing,
        "expires_in": ttl if is_typing else 0,
    }


def presence(user_id: int, status: str, last_seen_at: int | None) -> dict[str, Any]:
    return {
        "type": "presence",
        "user_id": user_id,
        "status": status,
        "last_seen_at": last_seen_at,
    }


def conversation(c: Conversation, member_count: int) -> dict[str, Any]:
    """A conversation object, as frames and answers carry it, with its number of members."""
    return {
        "id": c.id,
        "type": c.kind.value,
        "name": c.name,
        "topic": c.topic,
        "created_by": c.created_by,
        "created_at": c.created_at,
        "last_seq": c.last_seq,
        "min_seq": c.min_seq,
        "last_message_at": c.last_message_at,
        "member_count": member_count,
    }


def summary(s: ConversationSummary, last_sender: User | None) -> dict[str, Any]:
    data = conversation(s.conversation, s.member_count)
    data.update(
        unread=s.unread,
        read_seq=s.member.read_seq,
        delivered_seq=s.member.delivered_seq,
        role=s.member.role.value,
        mentions=s.mentions,
        notifications=notifications(s.member),
        last_message=message(s.last_message, last_sender) if s.last_message else None,
    )
    return data


def gap(conversation_id: int, from_seq: int, to_seq: int) -> dict[str, Any]:
    """History ``from_seq..to_seq`` was removed by retention and cannot be sent."""
    return {
        "type": "gap",
        "conversation_id": conversation_id,
        "from_seq": from_seq,
        "to_seq": to_seq,
        "code": "HISTORY_GAP",
    }
