"""Domain records shared by the store, the services and the transports.

Times are integer milliseconds since the Unix epoch, so every database and every wire
format agrees on them without time-zone handling.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


def now_ms() -> int:
    """The current wall-clock time in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


class ConversationKind(StrEnum):
    ROOM = "room"
    DIRECT = "direct"
    GROUP = "group"


class Role(StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"


class MessageKind(StrEnum):
    """What one entry of a conversation's stream is.

    ``text`` and ``system`` are messages. The others are mutation entries: they refer to
    an earlier message through ``ref_id`` and take a sequence number like any message,
    so live delivery, resume and gap detection carry them unchanged. ``edit`` holds the
    new text, ``delete`` nothing, ``react``/``unreact`` the emoji, ``pin``/``unpin``
    nothing.
    """

    TEXT = "text"
    SYSTEM = "system"
    EDIT = "edit"
    DELETE = "delete"
    REACT = "react"
    UNREACT = "unreact"
    PIN = "pin"
    UNPIN = "unpin"

    @property
    def is_mutation(self) -> bool:
        return self not in _MESSAGE_KINDS


#: The kinds that are messages of their own (counted as unread, shown in lists).
_MESSAGE_KINDS = frozenset({MessageKind.TEXT, MessageKind.SYSTEM})
#: ``mentions`` entry that stands for everyone in the conversation (``@room``).
MENTION_ROOM = "@room"


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str | None
    email: str | None
    display_name: str
    password_hash: str
    is_admin: bool
    is_active: bool
    created_at: int
    avatar_url: str | None = None
    deleted_at: int | None = None
    last_seen_at: int | None = None

    @property
    def handle(self) -> str:
        """The name other users see when there is no display name."""
        return self.display_name or self.username or (self.email or "").split("@")[0]


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    user_id: int
    created_at: int
    last_seen_at: int
    expires_at: int
    device: str
    ip: str
    revoked_at: int | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and self.expires_at > now_ms()


@dataclass(frozen=True, slots=True)
class RefreshToken:
    token_hash: str
    session_id: str
    created_at: int
    used_at: int | None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    at: int
    action: str
    actor_id: int | None
    target: str | None
    ip: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Conversation:
    id: int
    kind: ConversationKind
    name: str | None
    created_by: int | None
    created_at: int
    last_seq: int
    min_seq: int = 1
    topic: str | None = None
    last_message_at: int | None = None


@dataclass(frozen=True, slots=True)
class Member:
    conversation_id: int
    user_id: int
    role: Role
    joined_at: int
    read_seq: int
    delivered_seq: int


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    conversation_id: int
    seq: int
    sender_id: int | None
    kind: MessageKind
    content: str
    created_at: int
    client_msg_id: str | None = None
    #: The message a mutation entry (edit, delete, reaction, pin) applies to.
    ref_id: int | None = None
    reply_to_id: int | None = None
    thread_root_id: int | None = None
    edited_at: int | None = None
    #: Set on a deleted message (a tombstone: its content is emptied).
    deleted_at: int | None = None
    attachments: tuple[dict[str, Any], ...] = ()
    #: Lower-cased usernames mentioned (``@name``), and :data:`MENTION_ROOM`.
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append; the store assigns ``id``, ``seq`` and ``created_at``."""

    conversation_id: int
    sender_id: int | None
    content: str
    kind: MessageKind = MessageKind.TEXT
    client_msg_id: str | None = None
    ref_id: int | None = None
    reply_to_id: int | None = None
    thread_root_id: int | None = None
    attachments: tuple[dict[str, Any], ...] = ()
    mentions: tuple[str, ...] = ()

    @property
    def plain(self) -> bool:
        """Nothing beyond text: the append paths then skip the optional columns."""
        return (
            self.ref_id is None
            and self.reply_to_id is None
            and self.thread_root_id is None
            and not self.attachments
            and not self.mentions
        )


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of one append: the stored message and whether it already existed."""

    message: Message
    duplicate: bool


@dataclass(frozen=True, slots=True)
class ConversationSummary:
    """A conversation as one member sees it in their list."""

    conversation: Conversation
    member: Member
    member_count: int
    unread: int
    last_message: Message | None
    #: Unread messages that mention the member (by name or ``@room``).
    mentions: int = 0
