"""Broker channels and the control signals that travel on them.

A signal only says that something happened; whatever must not be lost is in the store.
"""

from __future__ import annotations

from typing import Any

import orjson

from palaver.broker.base import Broker


def user_channel(user_id: int) -> str:
    """Per-user channel: session revocations, account changes, direct wake-ups."""
    return f"user:{user_id}"


def conversation_channel(conversation_id: int) -> str:
    """Per-conversation channel: new messages, receipts, typing, membership changes."""
    return f"conv:{conversation_id}"


def encode(kind: str, **fields: Any) -> bytes:
    return orjson.dumps({"type": kind, **fields})


def decode(payload: bytes) -> dict[str, Any]:
    data = orjson.loads(payload)
    if not isinstance(data, dict) or "type" not in data:
        raise ValueError("broker payload without a type")
    return data


async def revoke_sessions(broker: Broker, user_id: int, session_ids: list[str] | None) -> None:
    """Tell every node to close a user's sockets: of these sessions, or all of them."""
    await broker.publish(
        user_channel(user_id), encode("revoke", user_id=user_id, sessions=session_ids)
    )


# Message wake-ups carry the client frame already encoded, behind a one-line header, so
# a node forwards the bytes to its sockets without decoding and re-encoding them.
_MESSAGE_TAG = b"M"
_EVENT_TAG = b"E"


def encode_messages(conversation_id: int, messages: list[tuple[int, bytes]]) -> bytes:
    """One wake-up for several messages of a conversation, in sequence order:
    ``M<conversation> <seq>:<length> ...\n`` then the frames back to back."""
    header = b" ".join(b"%d:%d" % (seq, len(frame)) for seq, frame in messages)
    return b"M%d %s\n%s" % (conversation_id, header, b"".join(f for _, f in messages))


def encode_event(event: dict[str, Any]) -> bytes:
    """A client frame (receipt, typing, membership) to forward to the members' sockets."""
    return _EVENT_TAG + orjson.dumps(event)


def decode_messages(payload: bytes) -> tuple[int, list[tuple[int, bytes]]] | None:
    """``(conversation_id, [(seq, frame), ...])`` of a message wake-up, else ``None``."""
    if not payload.startswith(_MESSAGE_TAG):
        return None
    header, _, body = payload.partition(b"\n")
    conversation, *entries = header[1:].split(b" ")
    messages = []
    offset = 0
    for entry in entries:
        seq, _, length = entry.partition(b":")
        end = offset + int(length)
        messages.append((int(seq), body[offset:end]))
        offset = end
    return int(conversation), messages


def decode_event(payload: bytes) -> bytes | None:
    """The encoded client frame of an event payload, else ``None``."""
    if not payload.startswith(_EVENT_TAG):
        return None
    return payload[1:]
