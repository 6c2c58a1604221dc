"""Edits, deletes, reactions, pins, replies, threads and mentions.

Every mutation commits through the group-commit writer's queue (as one transaction of
its own), then is announced like a message: it is an entry of the conversation's
stream, so every node, every live socket and every client that resumes later gets it
in sequence order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from palaver.config import Settings
from palaver.core import events
from palaver.core.errors import ErrorCode, PalaverError, not_found
from palaver.core.models import (
    MENTION_ROOM,
    Conversation,
    Member,
    Message,
    MessageKind,
    User,
    now_ms,
)
from palaver.core.protocol import check_content
from palaver.core.rich import (
    check_emoji,
    is_moderator,
    may_mention_room,
    may_pin,
    parse_mentions,
)
from palaver.services.messaging import MessagingService
from palaver.store.base import Store
from palaver.store.rich_base import Edit, Mutation, ThreadSummary


@dataclass(frozen=True, slots=True)
class ThreadView:
    root: Message
    replies: list[Message]
    summary: ThreadSummary
    read_seq: int
    unread: int


@dataclass(frozen=True, slots=True)
class SendExtras:
    reply_to_id: int | None
    thread_root_id: int | None
    mentions: tuple[str, ...]


class RichMessagingService:
    """The use cases; the socket and REST call the same methods."""

    def __init__(self, settings: Settings, store: Store, messaging: MessagingService) -> None:
        self.settings = settings
        self.store = store
        self.messaging = messaging
        #: Removes the blobs of a deleted message's attachments (the upload service).
        self.discard_blobs: Callable[[Sequence[str]], Awaitable[None]] | None = None

    # -- lookups ---------------------------------------------------------------------

    async def _visible(self, user: User, message_id: int) -> tuple[Message, Member | None]:
        """A message the user may see, and their membership (``None`` only for server
        admins outside the conversation). Outsiders get ``NOT_FOUND``."""
        message = await self.store.get_message(message_id)
        if message is None or message.kind.is_mutation:
            raise not_found("message")
        member = await self.store.get_member(message.conversation_id, user.id)
        if member is None and not user.is_admin:
            raise not_found("message")
        return message, member

    async def _conversation(self, conversation_id: int) -> Conversation:
        conversation = await self.store.get_conversation(conversation_id)
        if conversation is None:
            raise not_found()
        return conversation

    async def _commit(self, job: Any, actor: User) -> Mutation | None:
        mutation: Mutation | None = await self.messaging.writer.run(job)
        if mutation is not None:
            # No await since the commit: announced in sequence order (see send).
            self.messaging.users.put(actor)
            self.messaging.announce(mutation.entry)
        return mutation

    # -- sends -----------------------------------------------------------------------

    async def send_extras(
        self,
        sender: User,
        conversation_id: int,
        content: str,
        reply_to_id: int | None,
        thread_root_id: int | None,
    ) -> SendExtras:
        """Check a reply's and a thread reply's target (same conversation, a live
        message) and find the mentions. Only sends that use any of it come here."""
        if reply_to_id is not None:
            target = await self.store.get_message(reply_to_id)
            if (
                target is None
                or target.conversation_id != conversation_id
                or target.kind.is_mutation
            ):
                raise not_found("message")
        if thread_root_id is not None:
            root = await self.store.get_message(thread_root_id)
            if root is None or root.conversation_id != conversation_id or root.kind.is_mutation:
                raise not_found("message")
            # Threads are one level deep: replying to a reply joins its thread.
            thread_root_id = root.thread_root_id or root.id
        mentions = await self._mentions(sender, conversation_id, content)
        return SendExtras(reply_to_id, thread_root_id, mentions)

    async def _mentions(self, sender: User, conversation_id: int, content: str) -> tuple[str, ...]:
        """The mentions of a text as sent (or edited) by ``sender``: ``@room`` only
        where the sender may use it."""
        mentions = parse_mentions(content) if "@" in content else ()
        if MENTION_ROOM in mentions:
            conversation = await self._conversation(conversation_id)
            member = await self.store.get_member(conversation_id, sender.id)
            if not may_mention_room(conversation.kind, member, sender):
                mentions = tuple(m for m in mentions if m != MENTION_ROOM)
        return mentions

    # -- mutations -------------------------------------------------------------------

    async def edit(self, user: User, message_id: int, content: str) -> Message:
        """Replace the text of the user's own message; returns the message as edited."""
        # The one validation of every text (a content filter hooks check_content).
        content = check_content(content, self.settings.max_message_length)
        message, member = await self._visible(user, message_id)
        if message.sender_id != user.id or message.kind is not MessageKind.TEXT:
            raise PalaverError(ErrorCode.FORBIDDEN, "only the author can edit a message")
        if message.deleted_at is not None:
            raise not_found("message")
        # An edit is held to what a send is: no writing while muted or across a block,
        # and the word filter masks or refuses it.
        if self.messaging.guard is not None:
            content = self.messaging.guard(user, message.conversation_id, content, member)
        await self.messaging.check_rate(user.id)
        # The mentions follow the text; an edit notifies nobody by itself (see the
        # protocol document, "Mentions"), it only changes what unread counts find.
        mentions = await self._mentions(user, message.conversation_id, content)
        mutation = await self._commit(
            lambda: self.store.edit_message(message_id, user.id, content, now_ms(), mentions),
            user,
        )
        if mutation is None:
            raise not_found("message")
        return mutation.target

    async def delete(self, user: User, message_id: int) -> Message:
        """Delete a message: its author, the conversation's owners and admins, and
        server admins may. Every text it had goes with it (see the store's
        ``delete_message``). Returns the tombstone."""
        message, member = await self._visible(user, message_id)
        if message.sender_id != user.id and not is_moderator(member, user):
            raise PalaverError(ErrorCode.FORBIDDEN, "only the author or a moderator can delete")
        if message.deleted_at is not None:
            raise not_found("message")
        mutation = await self._commit(
            lambda: self.store.delete_message(message_id, user.id, now_ms()), user
        )
        if mutation is None:
            raise not_found("message")
        if mutation.blobs and self.discard_blobs is not None:
            await self.discard_blobs(mutation.blobs)
        return mutation.target

    async def react(self, user: User, message_id: int, emoji: str, add: bool) -> Message | None:
        """Add (or take back) a reaction; returns the stream entry, or ``None`` when
        nothing changed (adding twice is adding once)."""
        emoji = check_emoji(emoji)
        message, member = await self._visible(user, message_id)
        if member is None or message.deleted_at is not None:
            raise not_found("message")
        await self.messaging.check_rate(user.id)
        mutation = await self._commit(
            lambda: self.store.set_reaction(message_id, user.id, emoji, add, now_ms()), user
        )
        return mutation.entry if mutation else None

    async def pin(self, user: User, message_id: int, pinned: bool) -> Message | None:
        """Pin or unpin; returns the stream entry, or ``None`` when nothing changed."""
        message, member = await self._visible(user, message_id)
        if message.deleted_at is not None:
            raise not_found("message")
        conversation = await self._conversation(message.conversation_id)
        if not may_pin(conversation.kind, member, user):
            raise PalaverError(ErrorCode.FORBIDDEN, "only owners and admins pin in a room")
        mutation = await self._commit(
            lambda: self.store.set_pin(message_id, user.id, pinned, now_ms()), user
        )
        return mutation.entry if mutation else None

    # -- reads -----------------------------------------------------------------------

    async def pins(self, user: User, conversation_id: int) -> list[Message]:
        await self.messaging.require_member(conversation_id, user.id)
        found = []
        for message_id in await self.store.pinned_ids(conversation_id):
            message = await self.store.get_message(message_id)
            if message is not None:
                found.append(message)
        return found

    async def thread(
        self,
        user: User,
        root_id: int,
        *,
        after: int | None = None,
        before: int | None = None,
        limit: int = 50,
    ) -> ThreadView:
        """A page of a thread's replies, oldest first: the oldest ``limit`` (after
        ``after``), or with ``before`` alone the newest ``limit`` before it."""
        root, member = await self._visible(user, root_id)
        if member is None or root.thread_root_id is not None:
            raise not_found("message")
        limit = max(1, min(limit, 200))
        replies = await self.store.thread_replies(
            root_id, after_seq=after, before_seq=before, limit=limit
        )
        summaries = await self.store.thread_summaries([root_id])
        summary = summaries.get(root_id) or ThreadSummary(root_id, 0, None, None, ())
        read_seq = await self.store.thread_read_seq(user.id, root_id)
        unread = await self.store.count_thread_unread(user.id, root_id, read_seq)
        return ThreadView(root, replies, summary, read_seq, unread)

    async def mark_thread_read(self, user: User, root_id: int, seq: int) -> int:
        """Move the user's read cursor of a thread (forward only); returns it."""
        root, member = await self._visible(user, root_id)
        if member is None or root.thread_root_id is not None:
            raise not_found("message")
        return await self.store.mark_thread_read(user.id, root_id, seq)

    async def edit_history(self, user: User, message_id: int) -> list[Edit]:
        """Earlier texts of a message, for the conversation's moderators only (none
        once it is deleted)."""
        _, member = await self._visible(user, message_id)
        if not is_moderator(member, user):
            raise PalaverError(ErrorCode.FORBIDDEN, "only moderators can read edit history")
        return await self.store.edit_history(message_id)

    # -- rendering -------------------------------------------------------------------

    async def decorate(
        self, frames: list[dict[str, Any]], found: list[Message], viewer_id: int | None = None
    ) -> None:
        """Add reactions, thread summaries and the pinned mark to rendered messages
        (history, pins, threads): the state now, which later stream entries update.
        With ``viewer_id``, thread summaries also carry that user's ``read_seq`` and
        ``unread`` of the thread."""
        live = [m for m in found if not m.kind.is_mutation and m.deleted_at is None]
        if not live:
            return
        ids = [m.id for m in live]
        reactions = await self.store.get_reactions(ids)
        roots = [m.id for m in live if m.thread_root_id is None]
        threads = await self.store.thread_summaries(roots) if roots else {}
        unread = (
            await self.store.thread_unread(viewer_id, threads)
            if threads and viewer_id is not None
            else {}
        )
        pinned = set(await self.store.pinned_ids(live[0].conversation_id))
        for frame, message in zip(frames, found, strict=True):
            if message.id in reactions:
                frame["reactions"] = summarise_reactions(reactions[message.id])
            if message.id in threads:
                frame["thread"] = thread_frame(threads[message.id])
                if message.id in unread:
                    read_seq, count = unread[message.id]
                    frame["thread"].update(read_seq=read_seq, unread=count)
            if message.id in pinned:
                frame["pinned"] = True


def summarise_reactions(pairs: list[tuple[str, int]]) -> list[dict[str, Any]]:
    by_emoji: dict[str, list[int]] = {}
    for emoji, user_id in pairs:
        by_emoji.setdefault(emoji, []).append(user_id)
    return [
        {"emoji": emoji, "count": len(users), "user_ids": users}
        for emoji, users in by_emoji.items()
    ]


def thread_frame(summary: ThreadSummary) -> dict[str, Any]:
    return {
        "reply_count": summary.reply_count,
        "last_reply_at": summary.last_reply_at,
        "last_reply_seq": summary.last_reply_seq,
        "repliers": list(summary.repliers),
    }


def render(message: Message, sender: User | None) -> dict[str, Any]:
    """A message frame with its REST ``id``."""
    return {"id": message.id, **events.message(message, sender)}
