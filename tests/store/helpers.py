"""Small builders shared by the store contract tests."""

from __future__ import annotations

from collections.abc import Sequence

from palaver.core.models import (
    Appended,
    Conversation,
    ConversationKind,
    NewMessage,
    Role,
    Session,
    User,
    now_ms,
)
from palaver.store.base import Store

# "Now" for the tests: real time, because list_sessions judges expiry by the clock.
T0 = now_ms()
DAY = 86_400_000


async def user(store: Store, name: str, *, email: str | None = None) -> User:
    return await store.create_user(
        username=name,
        email=email if email is not None else f"{name}@example.org",
        display_name=name.title(),
        password_hash="argon2-hash",
    )


async def room(store: Store, name: str, *members: User, at: int = T0) -> Conversation:
    owner, *rest = members
    return await store.create_conversation(
        kind=ConversationKind.ROOM,
        name=name,
        created_by=owner.id,
        members=[(owner.id, Role.OWNER), *((m.id, Role.MEMBER) for m in rest)],
        at=at,
    )


def session(user_id: int, sid: str, *, at: int = T0, expires_at: int = T0 + DAY) -> Session:
    return Session(
        id=sid,
        user_id=user_id,
        created_at=at,
        last_seen_at=at,
        expires_at=expires_at,
        device="pytest",
        ip="127.0.0.1",
    )


async def send(
    store: Store,
    conversation: Conversation,
    sender: User | None,
    *texts: str,
    at: int = T0,
    client_ids: Sequence[str | None] | None = None,
) -> list[Appended]:
    ids = client_ids if client_ids is not None else [None] * len(texts)
    return await store.append_messages(
        [
            NewMessage(
                conversation_id=conversation.id,
                sender_id=sender.id if sender else None,
                content=content,
                client_msg_id=client_id,
            )
            for content, client_id in zip(texts, ids, strict=True)
        ],
        at,
    )
