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
