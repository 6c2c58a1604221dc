"""Rooms, groups and direct conversations, and who belongs to them."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import structlog

from palaver.broker.base import Broker, BrokerUnavailable
from palaver.core import events, names
from palaver.core.errors import ErrorCode, PalaverError, not_found
from palaver.core.models import (
    Conversation,
    ConversationKind,
    ConversationSummary,
    Member,
    Role,
    User,
    now_ms,
)
from palaver.core.notices import DELETED_USER, Notice
from palaver.services import signals
from palaver.services.audit import Audit
from palaver.services.messaging import MessagingService
from palaver.store.base import Anonymised, Store

if TYPE_CHECKING:
    from palaver.services.moderation import ModerationService

log = structlog.get_logger(__name__)

MAX_NAME = 64
MAX_GROUP_MEMBERS = 1000
MAX_TOPIC = 512


def _name(name: str, kind: ConversationKind) -> str:
    """A room or group name as stored: stripped, 1 to :data:`MAX_NAME` characters, no
    control characters (:func:`names.check_name`); else ``VALIDATION_ERROR``."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise PalaverError(
            ErrorCode.VALIDATION_ERROR,
            f"{kind.value} name must be 1-{MAX_NAME} characters",
            field="name",
        )
    return names.check_name(name, "name")


def _topic(topic: str | None) -> str | None:
    """A topic as stored: stripped, ``None`` when empty; ``VALIDATION_ERROR`` when too
    long or holding control characters other than line breaks and tabs."""
    if topic is None:
        return None
    topic = topic.strip()
    if len(topic) > MAX_TOPIC:
        raise PalaverError(
            ErrorCode.VALIDATION_ERROR,
            f"a topic has at most {MAX_TOPIC} characters",
            field="topic",
        )
    return names.check_name(topic, "topic", line_breaks=True) or None


class ConversationService:
    """Create, join, leave and manage conversations; every change reaches the
    members' sockets through the broker and the log through a system message."""

    def __init__(
        self, store: Store, broker: Broker, messaging: MessagingService, audit: Audit
    ) -> None:
        self.store = store
        self.broker = broker
        self.messaging = messaging
        self.audit = audit
        self.moderation: ModerationService | None = None

    # -- lookups ---------------------------------------------------------------------

    async def get(self, user_id: int, conversation_id: int) -> tuple[Conversation, Member]:
        """The conversation and the caller's membership, or ``NOT_FOUND``."""
        member = await self.messaging.require_member(conversation_id, user_id)
        conversation = await self.store.get_conversation(conversation_id)
        if conversation is None:
            raise not_found()
        return conversation, member

    async def list_for(self, user_id: int) -> list[ConversationSummary]:
        return await self.store.list_user_conversations(user_id)

    async def members(self, user_id: int, conversation_id: int) -> list[Member]:
        await self.messaging.require_member(conversation_id, user_id)
        return await self.store.list_members(conversation_id)

    async def resolve_user(self, ref: int | str) -> User:
        """A user by id or username (``NOT_FOUND`` when absent or deactivated)."""
        user: User | None = None
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            user = await self.store.get_user(int(ref))
        if user is None and isinstance(ref, str):
            user = await self.store.get_user_by_login(ref.lstrip("@"))
        if user is None or not user.is_active:
            raise not_found("user")
        return user

    # -- creating --------------------------------------------------------------------

    async def create_room(self, creator: User, name: str, topic: str | None = None) -> Conversation:
        """A public room; names are unique case-insensitively (``CONFLICT``)."""
        name = _name(name, ConversationKind.ROOM)
        topic = _topic(topic)
        room = await self.store.create_conversation(
            kind=ConversationKind.ROOM,
            name=name,
            created_by=creator.id,
            members=[(creator.id, Role.OWNER)],
            at=now_ms(),
            topic=topic,
        )
        await self._tell_user(creator.id, "joined", room.id, room.last_seq)
        await self.audit.record("room.created", actor_id=creator.id, target=str(room.id))
        return room

    async def create_group(
        self,
        creator: User,
        name: str,
        member_refs: list[int | str],
        topic: str | None = None,
    ) -> Conversation:
        """A private group with its first members; the creator owns it. Nothing is
        created if the creator may not add one of them (see ``check_add``)."""
        name = _name(name, ConversationKind.GROUP)
        topic = _topic(topic)
        if len(member_refs) > MAX_GROUP_MEMBERS:
            raise PalaverError(
                ErrorCode.VALIDATION_ERROR,
                f"a group has at most {MAX_GROUP_MEMBERS} members",
                field="members",
            )
        users = {creator.id: creator}
        for ref in member_refs:
            user = await self.resolve_user(ref)
            users.setdefault(user.id, user)
        if self.moderation is not None:
            await self.moderation.check_add(creator, list(users.values()), field="members")
        members = [(uid, Role.OWNER if uid == creator.id else Role.MEMBER) for uid in users]
        group = await self.store.create_conversation(
            kind=ConversationKind.GROUP,
            name=name,
            created_by=creator.id,
            members=members,
            at=now_ms(),
            topic=topic,
        )
        for uid in users:
            await self._tell_user(uid, "joined", group.id, group.last_seq)
        return group

    async def direct(self, user: User, other_ref: int | str) -> tuple[Conversation, bool]:
        """The direct conversation with another user, created on first use."""
        other = await self.resolve_user(other_ref)
        if other.id == user.id:
            raise PalaverError(ErrorCode.SELF_MESSAGE, "you cannot message yourself")
        if self.moderation is not None:
            await self.moderation.check_direct(user, other)
        conversation, created = await self.store.get_or_create_direct(user.id, other.id, now_ms())
        if self.moderation is not None:
            self.moderation.known_direct(user.id, other.id)
        if created:
            for uid in (user.id, other.id):
                await self._tell_user(uid, "joined", conversation.id, conversation.last_seq)
        return conversation, created

    async def update(
        self,
        actor: User,
        conversation_id: int,
        *,
        name: str | None = None,
        topic: str | None = None,
        set_topic: bool = False,
    ) -> Conversation:
        """Rename a room or group and set its topic (owners and admins; ``None`` or an
        empty topic with ``set_topic`` clears it). Members get a system message and a
        ``conversation_updated`` frame."""
        conversation, me = await self.get(actor.id, conversation_id)
        if conversation.kind is ConversationKind.DIRECT:
            raise PalaverError(ErrorCode.FORBIDDEN, "a direct conversation has no name or topic")
        if me.role is Role.MEMBER:
            raise PalaverError(ErrorCode.FORBIDDEN, "only owners and admins change this")
        if name is not None:
            name = _name(name, conversation.kind)
            if name == conversation.name:
                name = None
        if set_topic:
            topic = _topic(topic)
            set_topic = topic != conversation.topic
        if name is None and not set_topic:
            return conversation
        updated = await self.store.update_conversation(
            conversation_id, name=name, topic=topic, set_topic=set_topic
        )
        if updated is None:
            raise not_found()
        frame = {
            "type": "conversation_updated",
            "conversation": events.conversation(
                updated, await self.store.count_members(conversation_id)
            ),
        }
        with contextlib.suppress(BrokerUnavailable):
            await self.broker.publish(
                signals.conversation_channel(conversation_id), signals.encode_event(frame)
            )
        if name is not None:
            await self.messaging.post_system(
                conversation_id,
                Notice.of(actor, f" renamed the {conversation.kind.value} to {name}"),
            )
        if set_topic:
            text = f"set the topic: {topic}" if topic else "cleared the topic"
            await self.messaging.post_system(conversation_id, Notice.of(actor, f" {text}"))
        changed = [f for f, on in (("name", name is not None), ("topic", set_topic)) if on]
        await self.audit.record(
            "conversation.updated",
            actor_id=actor.id,
            target=str(conversation_id),
            changed=changed,
        )
        return updated

    # -- membership ------------------------------------------------------------------

    async def join_room(self, user: User, ref: int | str) -> tuple[Conversation, bool]:
        """Join a public room by id or name; ``False`` when already a member."""
        room = None
        if isinstance(ref, int) or ref.isdigit():
            room = await self.store.get_conversation(int(ref))
        if room is None and isinstance(ref, str):
            room = await self.store.get_room_by_name(ref)
        if room is None or room.kind is not ConversationKind.ROOM:
            raise not_found("room")
        if self.moderation is not None and await self.store.get_member(room.id, user.id) is None:
            await self.moderation.check_join(user.id, room.id)
        member = await self.store.add_member(room.id, user.id, Role.MEMBER, now_ms())
        if member is None:
            return room, False
        await self._tell_user(user.id, "joined", room.id, member.read_seq)
        await self.messaging.post_system(room.id, Notice.of(user, " joined"))
        if member.role is Role.OWNER:
            await self._crown(member, user.id, "joined_ownerless")
        return room, True

    async def leave(self, user: User, conversation_id: int) -> None:
        """Leave a room or group (direct conversations cannot be left). An owner who
        leaves hands ownership on, as the store picks the heir, and the members are
        told as of any role change: a system message and ``member_updated``."""
        conversation, _ = await self.get(user.id, conversation_id)
        if conversation.kind is ConversationKind.DIRECT:
            raise PalaverError(ErrorCode.FORBIDDEN, "a direct conversation cannot be left")
        left, heir = await self.store.leave_conversation(conversation_id, user.id)
        if not left:
            return  # a concurrent leave or kick already removed them and said so
        await self._tell_user(user.id, "left", conversation_id, None)
        await self.messaging.post_system(conversation_id, Notice.of(user, " left"))
        if heir is not None:
            await self._crown(heir, user.id, "owner_left")

    async def account_deleted(self, user_id: int, gone: Anonymised) -> None:
        """Tell the rooms and groups a deleted account was in that it left, and who
        now owns what it owned. The account is gone by now, so nothing here fails the
        deletion: a notice that cannot be posted is logged and the rest go on."""
        for conversation_id in gone.left:
            try:
                await self.messaging.post_system(conversation_id, Notice(f"{DELETED_USER} left"))
            except Exception:
                log.exception("account_deleted.notice_failed", conversation_id=conversation_id)
        for heir in gone.heirs:
            try:
                await self._crown(heir, user_id, "owner_deleted")
            except Exception:
                log.exception(
                    "account_deleted.heir_notice_failed", conversation_id=heir.conversation_id
                )

    async def _crown(self, heir: Member, actor_id: int, cause: str) -> None:
        await crown(self.store, self.messaging, self.audit, heir, actor_id, cause)

    async def add_member(self, actor: User, conversation_id: int, ref: int | str) -> Member:
        """Add someone to a group (owners and admins) or invite them into a room, if
        the actor may (see ``check_add``)."""
        conversation, me = await self.get(actor.id, conversation_id)
        if conversation.kind is ConversationKind.DIRECT:
            raise PalaverError(ErrorCode.FORBIDDEN, "direct conversations have two members")
        if conversation.kind is ConversationKind.GROUP and me.role is Role.MEMBER:
            raise PalaverError(ErrorCode.FORBIDDEN, "only owners and admins add members")
        user = await self.resolve_user(ref)
        if self.moderation is not None:
            await self.moderation.check_join(user.id, conversation_id)
            # Being added is not joining: in a room as in a group someone else chose
            # it, so it is held to what that someone may do in a direct message.
            await self.moderation.check_add(actor, [user], field="user_id")
        member = await self.store.add_member(conversation_id, user.id, Role.MEMBER, now_ms())
        if member is None:
            raise PalaverError(ErrorCode.CONFLICT, "already a member", field="user_id")
        await self._tell_user(user.id, "joined", conversation_id, member.read_seq)
        await self.messaging.post_system(conversation_id, Notice.of(actor, " added ", user))
        return member

    async def remove_member(self, actor: User, conversation_id: int, user_id: int) -> None:
        """Remove a member (owners and admins; nobody removes the owner)."""
        conversation, me = await self.get(actor.id, conversation_id)
        if user_id == actor.id:
            await self.leave(actor, conversation_id)
            return
        if conversation.kind is ConversationKind.DIRECT or me.role is Role.MEMBER:
            raise PalaverError(ErrorCode.FORBIDDEN, "only owners and admins remove members")
        target = await self.store.get_member(conversation_id, user_id)
        if target is None:
            raise not_found("member")
        if target.role is Role.OWNER or (target.role is Role.ADMIN and me.role is not Role.OWNER):
            raise PalaverError(ErrorCode.FORBIDDEN, "you cannot remove this member")
        await self.store.remove_member(conversation_id, user_id)
        await self._tell_user(user_id, "left", conversation_id, None)
        removed = await self.store.get_user(user_id) or f"user {user_id}"
        await self.messaging.post_system(conversation_id, Notice.of(actor, " removed ", removed))
        await self.audit.record(
            "member.removed",
            actor_id=actor.id,
            target=f"{conversation_id}:{user_id}",
        )

    async def _tell_user(
        self, user_id: int, kind: str, conversation_id: int, seq: int | None
    ) -> None:
        """Tell every node that a user's sockets gained or lost a conversation."""
        # Without the broker the user's sockets learn of it at their node's next
        # membership check, which reads the store.
        with contextlib.suppress(BrokerUnavailable):
            await self.broker.publish(
                signals.user_channel(user_id),
                signals.encode(kind, user_id=user_id, conversation_id=conversation_id, seq=seq),
            )


async def crown(
    store: Store,
    messaging: MessagingService,
    audit: Audit,
    heir: Member,
    actor_id: int,
    cause: str,
) -> None:
    """Tell a conversation that ``heir`` now owns it (the store already made it so): a
    notice, ``member_updated``, and the audit log."""
    successor = await store.get_user(heir.user_id)
    if successor is not None:
        await messaging.post_system(heir.conversation_id, Notice.of(successor, " is now the owner"))
    await messaging.member_updated(heir)
    await audit.record(
        "member.role_changed",
        actor_id=actor_id,
        target=f"{heir.conversation_id}:{heir.user_id}",
        role=Role.OWNER.value,
        cause=cause,
    )
