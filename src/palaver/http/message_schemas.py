"""Response bodies of messages in the REST API (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ReactionOut(BaseModel):
    emoji: str
    count: int
    user_ids: list[int] = Field(description="who reacted, oldest first")


class ThreadSummaryOut(BaseModel):
    reply_count: int
    last_reply_at: int | None = None
    last_reply_seq: int | None = None
    repliers: list[int] = Field(description="the latest repliers, newest first (up to 5)")
    read_seq: int | None = Field(
        default=None, description="history only: the reader's thread read cursor"
    )
    unread: int | None = Field(
        default=None, description="history only: replies by others after read_seq"
    )


class MessageOut(BaseModel):
    """One entry of a conversation's stream: a message, or a mutation entry (``kind``
    edit, delete, react, unreact, pin, unpin) that applies to message ``ref_id``."""

    # Compatibility fields (``room``, ``senderEmail``...) ride along where routes add them.
    model_config = ConfigDict(extra="allow")

    id: int
    type: str = "message"
    conversation_id: int
    seq: int
    message_id: int
    sender_id: int | None
    sender: str | None
    sender_name: str | None
    kind: str = Field(description="text, system, edit, delete, react, unreact, pin, unpin")
    content: str = Field(description="empty once deleted; the emoji of react/unreact")
    created_at: int
    client_msg_id: str | None = None
    ref_id: int | None = Field(None, description="the message a mutation entry applies to")
    reply_to_id: int | None = None
    thread_root_id: int | None = None
    edited_at: int | None = Field(None, description="set once the message was edited")
    deleted_at: int | None = Field(None, description="set on a tombstone")
    attachments: list[dict[str, Any]] | None = None
    mentions: list[str] | None = Field(None, description="lower-cased usernames, @room")
    reactions: list[ReactionOut] | None = None
    thread: ThreadSummaryOut | None = None
    pinned: bool | None = None
