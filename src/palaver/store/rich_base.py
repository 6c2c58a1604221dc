"""The storage interface of rich messages: edits, deletes, reactions, pins, threads."""

from __future__ import annotations

import abc
from collections.abc import Iterable
from dataclasses import dataclass

from palaver.core.models import Message

#: How many of a thread's latest repliers the summary names.
LATEST_REPLIERS = 5


@dataclass(frozen=True, slots=True)
class Mutation:
    """What a mutation committed: the stream entry and the target as it now is."""

    entry: Message
    target: Message
    #: Storage keys of the files a delete removed with the message's attachments: their
    #: records are gone in the same transaction, the blobs are the caller's to remove.
    blobs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ThreadSummary:
    root_id: int
    reply_count: int
    last_reply_at: int | None
    last_reply_seq: int | None
    repliers: tuple[int, ...]  # newest first


@dataclass(frozen=True, slots=True)
class Edit:
    """The text a message had until ``edited_at``."""

    message_id: int
    editor_id: int | None
    content: str
    edited_at: int


class RichMessageStore(abc.ABC):
    """The part of the store interface for rich messages."""

    @abc.abstractmethod
    async def edit_message(
        self,
        message_id: int,
        editor_id: int,
        content: str,
        at: int,
        mentions: tuple[str, ...] = (),
    ) -> Mutation | None:
        """Replace the text of a live message (and its ``mentions``, those of the new
        text), keep the old text in its edit history and append an ``edit`` entry that
        carries the new text and mentions; ``None`` when the message is gone or deleted."""

    @abc.abstractmethod
    async def delete_message(self, message_id: int, actor_id: int, at: int) -> Mutation | None:
        """Tombstone a message (content emptied, ``deleted_at`` set), empty its ``edit``
        entries (content and mentions), drop its edit history, reactions and pin, and
        append a ``delete`` entry; ``None`` when gone or already deleted."""

    @abc.abstractmethod
    async def set_reaction(
        self, message_id: int, user_id: int, emoji: str, add: bool, at: int
    ) -> Mutation | None:
        """Add or remove one reaction and append a ``react``/``unreact`` entry;
        ``None`` when nothing changed (idempotent) or the message is gone or deleted."""

    @abc.abstractmethod
    async def set_pin(
        self, message_id: int, user_id: int, pinned: bool, at: int
    ) -> Mutation | None:
        """Pin or unpin a message and append a ``pin``/``unpin`` entry; ``None`` when
        nothing changed or the message is gone or deleted."""

    @abc.abstractmethod
    async def get_reactions(self, message_ids: Iterable[int]) -> dict[int, list[tuple[str, int]]]:
        """``message id -> [(emoji, user id)]``, oldest first."""

    @abc.abstractmethod
    async def pinned_ids(self, conversation_id: int) -> list[int]:
        """The pinned message ids of a conversation, most recently pinned first."""

    @abc.abstractmethod
    async def thread_summaries(self, root_ids: Iterable[int]) -> dict[int, ThreadSummary]:
        """Reply counts and latest repliers of the given roots that have replies."""

    @abc.abstractmethod
    async def thread_replies(
        self,
        root_id: int,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """A thread's replies in ascending seq order. With ``after_seq``, the oldest
        ``limit`` after it (and before ``before_seq``, if given); with ``before_seq``
        alone, the newest ``limit`` before it; with neither, the oldest ``limit``."""

    @abc.abstractmethod
    async def thread_read_seq(self, user_id: int, root_id: int) -> int:
        """The seq of the last reply the user has read in the thread (0: none)."""

    @abc.abstractmethod
    async def mark_thread_read(self, user_id: int, root_id: int, seq: int) -> int:
        """Move the user's thread read cursor forward to ``seq``; return the cursor."""

    @abc.abstractmethod
    async def thread_unread(
        self, user_id: int, root_ids: Iterable[int]
    ) -> dict[int, tuple[int, int]]:
        """``root id -> (read_seq, unread)`` for the user, for the given roots that
        have replies: the thread read cursor and the replies by others after it."""

    @abc.abstractmethod
    async def count_thread_unread(self, user_id: int, root_id: int, read_seq: int) -> int:
        """Replies by others after ``read_seq``."""

    @abc.abstractmethod
    async def edit_history(self, message_id: int) -> list[Edit]:
        """Earlier texts of a message, oldest first (none once it is deleted)."""
