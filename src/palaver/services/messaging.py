"""Sending, history, receipts and typing.

The order of a send is the delivery guarantee: validate, rate-limit, check membership,
commit (group commit), and only then acknowledge and wake the nodes. A wake-up that is
lost costs nothing: nodes notice the sequence gap and read the range from the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import orjson
import structlog

from palaver.broker.base import Broker, BrokerUnavailable
from palaver.config import Settings
from palaver.core import events
from palaver.core.errors import ErrorCode, PalaverError, not_found
from palaver.core.models import (
    Appended,
    Conversation,
    Member,
    Message,
    NewMessage,
    User,
    now_ms,
)
from palaver.core.notices import Notice
from palaver.core.protocol import check_content
from palaver.core.ratelimit import TokenBucket
from palaver.services import signals
from palaver.services.users import UserCache
from palaver.services.writer import GroupCommitWriter
from palaver.store.base import CursorUpdate, Store

log = structlog.get_logger(__name__)

# Receipts are merged per (conversation, user) and written this often: a busy room then
# costs a few cursor writes per second instead of one per message per reader.
RECEIPT_FLUSH_SECONDS = 0.25
# A typing indicator lives this long unless renewed; clients renew every few seconds.
TYPING_TTL = 6.0
# Repeated "typing" from one user in one conversation is forwarded at most this often.
TYPING_THROTTLE = 2.0


class SendExtras(Protocol):
    @property
    def reply_to_id(self) -> int | None: ...
    @property
    def thread_root_id(self) -> int | None: ...
    @property
    def mentions(self) -> tuple[str, ...]: ...


ResolveExtras = Callable[[User, int, str, int | None, int | None], Awaitable[SendExtras]]


@dataclass(frozen=True, slots=True)
class HistoryPage:
    messages: list[Message]
    conversation: Conversation
    gap: tuple[int, int] | None  # removed by retention: (from_seq, to_seq)


class MessagingService:
    """Use cases of messages over the store, the broker and the group-commit writer."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: Broker,
        users: UserCache,
        *,
        on_batch: Callable[[int, float], None] | None = None,
        on_rate_limited: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.broker = broker
        self.users = users
        self.writer = GroupCommitWriter(store, on_batch=on_batch)
        self._receipts: dict[tuple[int, int], CursorUpdate] = {}
        self._announce: set[tuple[int, int]] = set()
        self._flush_lock = asyncio.Lock()
        self._closing = False
        self._receipt_task: asyncio.Task[None] | None = None
        self._typing_sent: dict[tuple[int, int], float] = {}
        self._to_announce: list[Message] = []
        self._announcer: asyncio.Task[None] | None = None
        # A commit woke a coroutine waiting to send its ack (see _announce_queued).
        self._acks_waking = False
        self._local_buckets: dict[int, TokenBucket] = {}
        self._on_rate_limited = on_rate_limited
        #: Checks reply and thread targets and finds mentions (set by the container).
        self.resolve_extras: ResolveExtras | None = None
        # Moderation's check of a send (mutes, blocks, the word filter), in memory; it
        # returns the content to store or raises.
        self.guard: Callable[[User, int, str, Member | None], str] | None = None

    # -- sending -------------------------------------------------------------------------

    async def check_rate(self, user_id: int) -> None:
        """Take a token from the user's message bucket or raise ``RATE_LIMITED``.

        The bucket is shared by every node through the broker. While the broker is
        unreachable this node keeps a bucket of its own, so messaging goes on (an outage
        of Redis must not stop chat) and a flood is still refused.
        """
        burst = self.settings.rate_messages_burst
        rate = self.settings.rate_messages_per_second
        try:
            wait = await self.broker.take_token(f"msg:{user_id}", burst, rate)
        except BrokerUnavailable:
            now = time.monotonic()
            bucket = self._local_buckets.get(user_id)
            if bucket is None:
                bucket = self._local_buckets[user_id] = TokenBucket.full(burst, rate, now)
            wait = bucket.take(now)
            if len(self._local_buckets) > 100_000:
                self._local_buckets.clear()
        self._refuse_if_waiting(wait)

    def _refuse_if_waiting(self, wait: float) -> None:
        if wait > 0:
            if self._on_rate_limited is not None:
                self._on_rate_limited("messages")
            raise PalaverError(
                ErrorCode.RATE_LIMITED,
                "too many messages; slow down",
                retry_after=round(wait, 3),
            )

    async def require_member(self, conversation_id: int, user_id: int) -> Member:
        """The membership, or ``NOT_FOUND`` (outsiders cannot tell missing from hidden)."""
        member = await self.store.get_member(conversation_id, user_id)
        if member is None:
            raise not_found()
        return member

    async def send(
        self,
        sender: User,
        conversation_id: int,
        content: str,
        *,
        client_msg_id: str | None = None,
        member_checked: bool = False,
        reply_to_id: int | None = None,
        thread_root_id: int | None = None,
        attachments: tuple[dict[str, Any], ...] = (),
        on_commit: Callable[[Appended], None] | None = None,
    ) -> Appended:
        """Durably append a message and wake every node; return it once committed.

        A repeated ``client_msg_id`` returns the original message (``duplicate``); an
        empty one is none.
        ``reply_to_id`` and ``thread_root_id`` name messages of the same conversation.
        ``attachments`` are already resolved elements (:meth:`UploadService.attach`);
        with some, the text may be empty.
        ``on_commit`` is called with the outcome in the commit's own turn, before any
        coroutine (this one included) resumes: a socket writes its ack there, ahead of
        whatever else may write the message to it (a catch-up reading the store)."""
        check_content(content, self.settings.max_message_length, allow_empty=bool(attachments))
        await self.check_rate(sender.id)
        member = None if member_checked else await self.require_member(conversation_id, sender.id)
        new = self._new_message(
            sender, conversation_id, content, client_msg_id, member, attachments
        )
        # A plain message skips this: no query, not even the mention regex.
        if self._needs_extras(content, reply_to_id, thread_root_id):
            assert self.resolve_extras is not None
            extras = await self.resolve_extras(
                sender, conversation_id, content, reply_to_id, thread_root_id
            )
            new = replace(
                new,
                reply_to_id=extras.reply_to_id,
                thread_root_id=extras.thread_root_id,
                mentions=extras.mentions,
            )
        future: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self.writer.submit(new, _Committed(self, sender, self._settle(future, on_commit)))
        return await future

    def _settle(
        self, future: asyncio.Future[Appended], on_commit: Callable[[Appended], None] | None
    ) -> Callable[[Appended | None, BaseException | None], None]:
        def settle(appended: Appended | None, error: BaseException | None) -> None:
            if future.done():  # the sender stopped waiting; the message is stored anyway
                return
            if error is not None:
                future.set_exception(error)
                return
            assert appended is not None
            if on_commit is None:
                self._acks_waking = True
            else:
                try:
                    on_commit(appended)
                except Exception:
                    log.exception("send.on_commit_failed")
            future.set_result(appended)

        return settle

    def send_now(
        self,
        sender: User,
        conversation_id: int,
        content: str,
        client_msg_id: str | None,
        then: Callable[[Appended | None, BaseException | None], None],
    ) -> bool:
        """:meth:`send` without a coroutine, for a member's plain text message when
        every check can be answered in memory; ``False`` (nothing done) otherwise.

        Check failures raise as :meth:`send` does. Once queued, ``then`` is called
        with the outcome after the commit: ``(appended, None)`` or ``(None, error)``.
        A socket sends a message a second, from a device waiting for each ack, so this
        saves the task, the coroutines and the future of each one."""
        if self._needs_extras(content, None, None):
            return False
        check_content(content, self.settings.max_message_length)
        wait = self.broker.take_token_now(
            f"msg:{sender.id}",
            self.settings.rate_messages_burst,
            self.settings.rate_messages_per_second,
        )
        if wait is None:
            return False
        self._refuse_if_waiting(wait)
        new = self._new_message(sender, conversation_id, content, client_msg_id, None)
        self.writer.submit(new, _Committed(self, sender, then))
        return True

    def _needs_extras(self, content: str, reply_to_id: int | None, thread_root: int | None) -> bool:
        return self.resolve_extras is not None and (
            reply_to_id is not None or thread_root is not None or "@" in content
        )

    def _new_message(
        self,
        sender: User,
        conversation_id: int,
        content: str,
        client_msg_id: str | None,
        member: Member | None,
        attachments: tuple[dict[str, Any], ...] = (),
    ) -> NewMessage:
        if self.guard is not None:
            content = self.guard(sender, conversation_id, content, member)
        return NewMessage(
            conversation_id=conversation_id,
            sender_id=sender.id,
            content=content,
            # "" is no id: as a key, it would make every later send with "" a duplicate.
            client_msg_id=client_msg_id or None,
            attachments=attachments,
        )

    def _committed(self, sender: User, appended: Appended) -> None:
        """What follows a send's commit, in commit order (see :class:`_Committed`)."""
        if not appended.duplicate:
            self.users.put(sender)
            self._announce_later(appended.message)
        # Writing a message means having read everything before it (Telegram, Slack).
        # Nobody needs a receipt event for it: every member's socket gets the message
        # itself, and the sender's devices count their own messages as read. A thread
        # reply says nothing of the main timeline, which keeps its unread and mentions.
        message = appended.message
        self.queue_receipt(
            CursorUpdate(
                message.conversation_id,
                sender.id,
                read_seq=None if message.thread_root_id is not None else message.seq,
                delivered_seq=message.seq,
            ),
            announce=False,
        )

    async def post_system(self, conversation_id: int, notice: Notice) -> Message:
        """Append a system notice (joins, leaves) to the conversation's log."""
        # A transaction of its own, in turn with the writer's batches (as an edit is),
        # since the notice's names go with it.
        message = await self.writer.run(
            lambda: self.store.append_notice(conversation_id, notice, now_ms())
        )
        # Announced when this coroutine resumes, which may be after a batch committed
        # later was: the announcer sorts what it holds, and a socket that sees a gap
        # reads the missing entry from the store.
        self._announce_later(message)
        return message

    def announce(self, message: Message) -> None:
        """Publish a committed stream entry; call it with no await since the commit."""
        self._announce_later(message)

    def _announce_later(self, message: Message) -> None:
        """Queue a committed message for publication.

        Called with no await between the commit and the call, so the queue holds
        messages in commit (sequence) order; one task publishes them in that order,
        one wake-up per conversation per round. Publishing from each sender's
        coroutine instead let two messages of one batch race, and every socket of the
        conversation then saw a gap and read it back from the store.
        """
        self._to_announce.append(message)
        if self._announcer is None:
            self._announcer = asyncio.create_task(self._announce_queued())

    async def _announce_queued(self) -> None:
        try:
            while self._to_announce:
                if self._acks_waking:
                    # One turn first: the coroutines a commit woke (a send waiting to
                    # ack) run before this, so a sender's socket has its ack queued
                    # before the message itself is written to it. Sends acked inline
                    # need no turn, and their ack and message share a write.
                    self._acks_waking = False
                    await asyncio.sleep(0)
                batch, self._to_announce = self._to_announce, []
                by_conversation: dict[int, list[tuple[int, bytes]]] = {}
                for message in batch:
                    sender = (
                        await self.users.get(message.sender_id)
                        if message.sender_id is not None
                        else None
                    )
                    frame = orjson.dumps(events.message(message, sender))
                    by_conversation.setdefault(message.conversation_id, []).append(
                        (message.seq, frame)
                    )
                for conversation_id, messages in by_conversation.items():
                    # Concurrent batches (see GroupCommitWriter) may hand back one
                    # conversation's messages out of order; a wake-up must not.
                    messages.sort(key=_first)
                    await self._publish_messages(conversation_id, messages)
        finally:
            self._announcer = None

    async def _publish_messages(
        self, conversation_id: int, messages: list[tuple[int, bytes]]
    ) -> None:
        """Publish committed messages. Never raises: the store already has them, and
        nodes that miss the wake-up catch up on the next message, the sweep or resume."""
        try:
            await self.broker.publish(
                signals.conversation_channel(conversation_id),
                signals.encode_messages(conversation_id, messages),
            )
        except BrokerUnavailable as exc:
            log.warning("broker.publish_failed", error=str(exc), seq=messages[-1][0])

    # -- reading ---------------------------------------------------------------------------

    async def history(
        self,
        user_id: int,
        conversation_id: int,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> HistoryPage:
        """A page of messages, oldest first. ``gap`` says when part of the asked range
        was removed by retention (the client must not wait for it)."""
        await self.require_member(conversation_id, user_id)
        conversation = await self.store.get_conversation(conversation_id)
        if conversation is None:
            raise not_found()
        limit = max(1, min(limit, 200))
        found = await self.store.get_messages(
            conversation_id, after_seq=after, before_seq=before, limit=limit
        )
        gap = None
        if after is not None and after + 1 < conversation.min_seq:
            gap = (after + 1, conversation.min_seq - 1)
        elif before is not None and len(found) < limit and conversation.min_seq > 1:
            gap = (1, conversation.min_seq - 1)
        return HistoryPage(messages=found, conversation=conversation, gap=gap)

    # -- receipts --------------------------------------------------------------------------

    def queue_receipt(self, update: CursorUpdate, *, announce: bool = True) -> None:
        """Merge a cursor move into the next flush (forward-only, so max wins).

        ``announce`` publishes a ``receipt`` event after the write; moves implied by the
        user's own message are written quietly."""
        self._requeue(update, announce=announce)
        if self._receipt_task is None and not self._closing:
            self._receipt_task = asyncio.create_task(self._flush_receipts_later())

    def _requeue(self, update: CursorUpdate, *, announce: bool) -> None:
        key = (update.conversation_id, update.user_id)
        if announce:
            self._announce.add(key)
        previous = self._receipts.get(key)
        if previous is not None:
            update = CursorUpdate(
                update.conversation_id,
                update.user_id,
                read_seq=_max(previous.read_seq, update.read_seq),
                delivered_seq=_max(previous.delivered_seq, update.delivered_seq),
            )
        self._receipts[key] = update

    async def _flush_receipts_later(self) -> None:
        try:
            await asyncio.sleep(RECEIPT_FLUSH_SECONDS)
            await self.flush_receipts()
        finally:
            self._receipt_task = None
            if self._receipts and not self._closing:
                self._receipt_task = asyncio.create_task(self._flush_receipts_later())

    async def flush_receipts(self) -> None:
        """Write the merged cursor moves and tell the conversations about them.

        Returns once everything queued before the call is written, including moves a
        background flush had already taken."""
        async with self._flush_lock:
            await self._flush()

    async def _flush(self) -> None:
        if not self._receipts:
            return
        pending, self._receipts = self._receipts, {}
        announce, self._announce = self._announce, set()
        try:
            changed = await self.store.advance_cursors(list(pending.values()))
        except BaseException:
            # Put them back (merged with anything newer) so neither a database blip nor
            # a cancellation at shutdown loses one.
            for key, update in pending.items():
                self._requeue(update, announce=key in announce)
            raise
        for member in changed:
            if (member.conversation_id, member.user_id) in announce:
                await self._publish_event(member.conversation_id, events.receipt(member))

    async def mark(self, user_id: int, conversation_id: int, seq: int, *, read: bool) -> None:
        """A device says it has received (or the user has read) up to ``seq``."""
        await self.require_member(conversation_id, user_id)
        self.queue_receipt(
            CursorUpdate(
                conversation_id,
                user_id,
                read_seq=seq if read else None,
                delivered_seq=seq,
            )
        )

    # -- typing ----------------------------------------------------------------------------

    async def typing(self, user_id: int, conversation_id: int, is_typing: bool) -> bool:
        """Forward a typing indicator (never stored); ``False`` when throttled."""
        key = (conversation_id, user_id)
        now = time.monotonic()
        if is_typing:
            last = self._typing_sent.get(key)
            if last is not None and now - last < TYPING_THROTTLE:
                return False
            self._typing_sent[key] = now
            if len(self._typing_sent) > 10_000:
                self._typing_sent = {
                    k: v for k, v in self._typing_sent.items() if now - v < TYPING_TTL
                }
        else:
            self._typing_sent.pop(key, None)
        await self._publish_event(
            conversation_id, events.typing(conversation_id, user_id, is_typing, TYPING_TTL)
        )
        return True

    async def member_updated(self, member: Member) -> None:
        """Tell the conversation's sockets that a member's role or mute changed."""
        await self._publish_event(member.conversation_id, events.member_updated(member))

    async def _publish_event(self, conversation_id: int, event: dict[str, object]) -> None:
        try:
            await self.broker.publish(
                signals.conversation_channel(conversation_id), signals.encode_event(event)
            )
        except BrokerUnavailable as exc:
            log.warning("broker.publish_failed", error=str(exc))

    async def close(self) -> None:
        """Commit queued messages and write every pending cursor move."""
        self._closing = True
        await self.writer.close()
        if self._announcer is not None:
            await self._announcer
        task, self._receipt_task = self._receipt_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.flush_receipts()


class _Committed:
    """A send's :class:`~palaver.services.writer.Waiter`: runs what follows the commit
    as the writer hands out the batch's outcomes, so announcements queue in commit
    order whether or not a coroutine waits, then passes the outcome on."""

    __slots__ = ("_sender", "_service", "_settled", "_then")

    def __init__(
        self,
        service: MessagingService,
        sender: User,
        then: Callable[[Appended | None, BaseException | None], None],
    ) -> None:
        self._service = service
        self._sender = sender
        self._then = then
        self._settled = False

    def done(self) -> bool:
        return self._settled

    def set_result(self, result: Appended, /) -> None:
        self._settled = True
        # Raising here would leave the rest of the batch without its outcome.
        try:
            self._service._committed(self._sender, result)
        except Exception:
            log.exception("send.after_commit_failed")
        self._tell(result, None)

    def set_exception(self, exception: BaseException, /) -> None:
        self._settled = True
        self._tell(None, exception)

    def _tell(self, appended: Appended | None, error: BaseException | None) -> None:
        try:
            self._then(appended, error)
        except Exception:
            log.exception("send.outcome_failed")


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def _first(item: tuple[int, bytes]) -> int:
    return item[0]
