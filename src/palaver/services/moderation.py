"""Moderation and safety use cases: roles, kick, ban, mute, invite links, the content
filter, blocks, reports, direct-message privacy and notification settings.

What the send path needs (mutes, blocks between the two people of a direct
conversation, word filters) is kept in memory on every node, loaded at start and kept
current by signals on the broker's ``moderation`` channel, so a send costs no query more
than before. The store stays the source of truth: every node reloads the state from it
every :data:`RELOAD_SECONDS` or so, which bounds how long a lost signal (a broker
restart) leaves a node behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog

from palaver.broker.base import Broker, BrokerUnavailable, Subscription
from palaver.config import Settings
from palaver.core import events
from palaver.core.errors import ErrorCode, PalaverError, not_found
from palaver.core.models import Conversation, Member, Role, User, now_ms
from palaver.core.moderation import (
    FOREVER,
    Ban,
    DmPolicy,
    Invite,
    NotifyLevel,
    Report,
    member_state,
    notifications,
    wire_until,
)
from palaver.core.moderation_commands import ModerationOp
from palaver.core.notices import Notice
from palaver.core.permissions import Move, Standing, check
from palaver.core.wordfilter import (
    FilterAction,
    WordFilter,
    compile_filter,
    normalise_words,
)
from palaver.services import signals
from palaver.services.audit import Audit
from palaver.services.conversations import crown
from palaver.services.messaging import MessagingService
from palaver.store.base import Store

if TYPE_CHECKING:
    from palaver.services.conversations import ConversationService

log = structlog.get_logger(__name__)

MODERATION_CHANNEL = "moderation"
# One audit entry per (user, conversation) per this many seconds of filter hits.
FILTER_AUDIT_INTERVAL = 60.0
INVITE_CODE_BYTES = 16  # 128 random bits: not guessable
KNOWN_DIRECTS = 100_000
#: Each node rebuilds its moderation state from the store this often, jittered by a
#: quarter either way so the nodes do not query together. Signals make changes
#: immediate; the reload only repairs the ones a broker outage lost, like the hub's
#: sweep does for lost message wake-ups. The state is small (mutes in force, blocks,
#: conversation filters), so three queries a node every 45 s cost nothing.
RELOAD_SECONDS = 45.0
#: The refusal of a direct conversation, whether a block or a policy refuses it.
UNREACHABLE = "you cannot message this user"
#: How many refused users an error message names before it counts the rest.
MAX_NAMED = 5


def invite_out(invite: Invite) -> dict[str, Any]:
    return {
        "code": invite.code,
        "conversation_id": invite.conversation_id,
        "created_by": invite.created_by,
        "created_at": invite.created_at,
        "expires_at": invite.expires_at,
        "max_uses": invite.max_uses,
        "uses": invite.uses,
        "revoked": invite.revoked_at is not None,
    }


def ban_out(ban: Ban) -> dict[str, Any]:
    return {
        "conversation_id": ban.conversation_id,
        "user_id": ban.user_id,
        "until": ban.until,
        "banned_by": ban.banned_by,
        "at": ban.at,
        "reason": ban.reason,
    }


def report_out(report: Report) -> dict[str, Any]:
    return {
        "id": report.id,
        "message_id": report.message_id,
        "conversation_id": report.conversation_id,
        "reporter_id": report.reporter_id,
        "reason": report.reason,
        "created_at": report.created_at,
        "resolved_at": report.resolved_at,
        "resolved_by": report.resolved_by,
        "resolution": report.resolution,
    }


def _until(duration: int | None, now: int) -> int:
    return FOREVER if duration is None else now + duration * 1000


@dataclass
class ModerationState:
    """This node's copy of what the send path and presence need."""

    mutes: dict[tuple[int, int], int] = field(default_factory=dict)
    # user -> the users they block, and the reverse.
    blocks: dict[int, set[int]] = field(default_factory=dict)
    blocked_by: dict[int, set[int]] = field(default_factory=dict)
    # direct conversation -> the member(s) of it who block the other.
    direct_blockers: dict[int, set[int]] = field(default_factory=dict)
    filters: dict[int, tuple[tuple[str, ...], str | None]] = field(default_factory=dict)

    def set_block(self, user_id: int, blocked_id: int, on: bool, direct: int | None) -> None:
        if on:
            self.blocks.setdefault(user_id, set()).add(blocked_id)
            self.blocked_by.setdefault(blocked_id, set()).add(user_id)
            if direct is not None:
                self.direct_blockers.setdefault(direct, set()).add(user_id)
            return
        for index, key, value in (
            (self.blocks, user_id, blocked_id),
            (self.blocked_by, blocked_id, user_id),
            (self.direct_blockers, direct, user_id),
        ):
            if key is None:
                continue
            found = index.get(key)
            if found is not None:
                found.discard(value)
                if not found:
                    del index[key]

    def hidden_from(self, user_id: int) -> set[int]:
        """Users who must not see ``user_id``'s presence (those they block)."""
        return self.blocks.get(user_id, set())

    def blocks_between(self, a: int, b: int) -> bool:
        return b in self.blocks.get(a, ()) or a in self.blocks.get(b, ())


def _apply(state: ModerationState, signal: dict[str, Any]) -> None:
    """Apply one ``moderation`` signal to a node's state."""
    kind = signal["type"]
    if kind == "mute":
        key = (int(signal["conversation_id"]), int(signal["user_id"]))
        if signal.get("until") is None:
            state.mutes.pop(key, None)
        else:
            state.mutes[key] = int(signal["until"])
    elif kind == "block":
        direct = signal.get("direct")
        state.set_block(
            int(signal["user_id"]),
            int(signal["blocked_id"]),
            bool(signal["on"]),
            int(direct) if direct is not None else None,
        )
    elif kind == "filter":
        cid = int(signal["conversation_id"])
        words = tuple(signal.get("words") or ())
        if words or signal.get("action"):
            state.filters[cid] = (words, signal.get("action"))
        else:
            state.filters.pop(cid, None)


class ModerationService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: Broker,
        messaging: MessagingService,
        conversations: ConversationService,
        audit: Audit,
    ) -> None:
        self.settings = settings
        self.store = store
        self.broker = broker
        self.messaging = messaging
        self.conversations = conversations
        self.audit = audit
        self.state = ModerationState()
        self.server_words = normalise_words(settings.filter_words)
        self.server_action = FilterAction(settings.filter_action)
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self._subscription: Subscription | None = None
        self.reload_seconds = RELOAD_SECONDS
        self._reloader: asyncio.Task[None] | None = None
        # Signals received while a reload reads the store, applied again to its result.
        self._pending: list[dict[str, Any]] | None = None
        self._filter_audited: dict[tuple[int, int], float] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._directs: OrderedDict[tuple[int, int], None] = OrderedDict()
        messaging.guard = self.guard_send
        conversations.moderation = self

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe to the moderation channel, then load the state (in that order, so
        no change made in between is missed), then reload it now and then."""
        async with self._load_lock:
            if self._loaded:
                return
            self._subscription = await self.broker.subscribe(self._on_signal, [MODERATION_CHANNEL])
            await self._load()
            self._loaded = True
            self._reloader = asyncio.create_task(self._reload_forever())

    async def reload(self) -> None:
        """Rebuild this node's state from the store (see :data:`RELOAD_SECONDS`)."""
        async with self._load_lock:
            await self._load()

    async def _load(self) -> None:
        # A signal that arrives while the store is read may or may not be in what is
        # read; it is applied to the new state too, so the swap cannot undo it.
        self._pending = []
        try:
            state = ModerationState()
            for cid, uid, until in await self.store.active_mutes(now_ms()):
                state.mutes[(cid, uid)] = until
            pairs = await self.store.all_blocks()
            directs = await self.store.direct_ids(pairs)
            for a, b in pairs:
                state.set_block(a, b, True, directs.get((min(a, b), max(a, b))))
            for cid, (words, action) in (await self.store.conversation_filters()).items():
                state.filters[cid] = (normalise_words(words), action)
            for signal in self._pending:
                _apply(state, signal)
            self.state = state
        finally:
            self._pending = None

    async def _reload_forever(
        self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        while True:
            await sleep(self.reload_seconds * random.uniform(0.75, 1.25))
            try:
                await self.reload()
            except Exception as exc:  # the store is down: keep the state, try again later
                log.warning("moderation.reload_failed", error=str(exc))

    async def close(self) -> None:
        if self._reloader is not None:
            self._reloader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reloader
            self._reloader = None
        if self._subscription is not None:
            await self._subscription.close()
        for task in list(self._tasks):
            task.cancel()

    def _on_signal(self, channel: str, payload: bytes) -> None:
        try:
            signal = signals.decode(payload)
        except ValueError:
            return
        _apply(self.state, signal)
        if self._pending is not None:
            self._pending.append(signal)

    async def _signal(self, kind: str, **fields: Any) -> None:
        """Apply a change here at once, then tell the other nodes."""
        payload = signals.encode(kind, **fields)
        self._on_signal(MODERATION_CHANNEL, payload)
        try:
            await self.broker.publish(MODERATION_CHANNEL, payload)
        except BrokerUnavailable as exc:
            log.warning("moderation.publish_failed", error=str(exc))

    async def _ready(self) -> None:
        if not self._loaded:
            await self.start()

    # -- the send path -------------------------------------------------------------------

    def guard_send(
        self, sender: User, conversation_id: int, content: str, member: Member | None
    ) -> str:
        """Refuse a send from a muted member or across a block, and apply the filter.
        Memory only: no query."""
        state = self.state
        now = now_ms()
        muted = (
            member.muted_until
            if member is not None
            else state.mutes.get((conversation_id, sender.id))
        )
        if muted is not None and muted > now:
            raise PalaverError(
                ErrorCode.MUTED,
                "you are muted in this conversation",
                details={"muted_until": wire_until(muted)},
            )
        blockers = state.direct_blockers.get(conversation_id)
        if blockers:
            if sender.id in blockers:
                raise PalaverError(ErrorCode.FORBIDDEN, "you blocked this user; unblock to write")
            raise PalaverError(ErrorCode.FORBIDDEN, "you cannot message this user")
        return self.filter_text(conversation_id, content, sender.id)

    def filter_for(self, conversation_id: int) -> tuple[WordFilter, FilterAction]:
        own = self.state.filters.get(conversation_id)
        if own is None:
            return compile_filter(self.server_words), self.server_action
        words, action = own
        combined = (
            tuple(sorted(set(self.server_words) | set(words))) if words else self.server_words
        )
        return compile_filter(combined), FilterAction(action) if action else self.server_action

    def filter_text(self, conversation_id: int, content: str, user_id: int | None = None) -> str:
        """The content as it may be stored: masked, or ``CONTENT_REJECTED``. Sends and
        edits both call this."""
        word_filter, action = self.filter_for(conversation_id)
        result = word_filter.apply(content)
        if not result.hits:
            return content
        self._audit_hit(conversation_id, user_id, action, result.hits)
        if action is FilterAction.REJECT:
            raise PalaverError(
                ErrorCode.CONTENT_REJECTED,
                "the message contains words not allowed here",
                field="content",
            )
        return result.text

    def _audit_hit(
        self, conversation_id: int, user_id: int | None, action: FilterAction, hits: Sequence[str]
    ) -> None:
        key = (conversation_id, user_id or 0)
        now = time.monotonic()
        last = self._filter_audited.get(key)
        if last is not None and now - last < FILTER_AUDIT_INTERVAL:
            return
        self._filter_audited[key] = now
        if len(self._filter_audited) > 10_000:
            self._filter_audited = {
                k: v for k, v in self._filter_audited.items() if now - v < FILTER_AUDIT_INTERVAL
            }
        # Off the send path: the audit write never delays the message.
        task = asyncio.create_task(
            self.audit.record(
                "filter.hit",
                actor_id=user_id,
                target=str(conversation_id),
                filter_action=action.value,
                words=sorted(set(hits))[:10],
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- helpers -----------------------------------------------------------------------

    async def _standing(
        self, actor: User, conversation_id: int
    ) -> tuple[Conversation, Member, Standing]:
        conversation, member = await self.conversations.get(actor.id, conversation_id)
        return conversation, member, Standing(member.role, actor.is_admin)

    def _require(self, refusal: object) -> None:
        if refusal is not None:
            raise PalaverError(ErrorCode.FORBIDDEN, getattr(refusal, "reason", "forbidden"))

    async def _target(self, conversation_id: int, user_id: int) -> tuple[Member | None, Standing]:
        target = await self.store.get_member(conversation_id, user_id)
        user = await self.store.get_user(user_id)
        return target, Standing(target.role if target else None, bool(user and user.is_admin))

    async def _name(self, user_id: int) -> User | str:
        """The user, to be named in a notice by its handle (text when it is gone)."""
        return await self.store.get_user(user_id) or f"user {user_id}"

    async def _tell(self, user_id: int, kind: str, conversation_id: int) -> None:
        with contextlib.suppress(BrokerUnavailable):
            await self.broker.publish(
                signals.user_channel(user_id),
                signals.encode(kind, user_id=user_id, conversation_id=conversation_id, seq=None),
            )

    # -- kick, ban, mute, roles ----------------------------------------------------------

    async def kick(self, actor: User, conversation_id: int, user_id: int) -> None:
        """Remove a member; they may come back (a public room, a new invite), still
        muted if they were: a kick is no way out of a mute."""
        conversation, _, me = await self._standing(actor, conversation_id)
        _, them = await self._target(conversation_id, user_id)
        self._require(
            check(Move.KICK, conversation.kind, me, them, self_target=user_id == actor.id)
        )
        if not await self.store.remove_member(conversation_id, user_id):
            raise not_found("member")
        await self._tell(user_id, "left", conversation_id)
        name = await self._name(user_id)
        await self.messaging.post_system(conversation_id, Notice.of(actor, " removed ", name))
        await self.audit.record(
            "member.kicked", actor_id=actor.id, target=f"{conversation_id}:{user_id}"
        )

    async def ban(
        self,
        actor: User,
        conversation_id: int,
        user_id: int,
        *,
        duration: int | None = None,
        reason: str | None = None,
    ) -> Ban:
        """Remove a member (or someone who left) and keep them out until the ban ends.
        A mute outlives the ban, as it outlives a kick."""
        conversation, _, me = await self._standing(actor, conversation_id)
        target, them = await self._target(conversation_id, user_id)
        if target is None and await self.store.get_user(user_id) is None:
            raise not_found("user")
        self._require(check(Move.BAN, conversation.kind, me, them, self_target=user_id == actor.id))
        now = now_ms()
        ban = Ban(
            conversation_id=conversation_id,
            user_id=user_id,
            until=None if duration is None else now + duration * 1000,
            banned_by=actor.id,
            at=now,
            reason=reason,
        )
        was_member = await self.store.ban_member(ban)
        if was_member:
            await self._tell(user_id, "left", conversation_id)
            name = await self._name(user_id)
            await self.messaging.post_system(conversation_id, Notice.of(actor, " banned ", name))
        await self.audit.record(
            "member.banned",
            actor_id=actor.id,
            target=f"{conversation_id}:{user_id}",
            until=ban.until,
            reason=reason,
        )
        return ban

    async def unban(self, actor: User, conversation_id: int, user_id: int) -> None:
        """Lift a ban in force; an expired ban is no ban (``NOT_FOUND``), as the list
        and the joining rules see it."""
        conversation, _, me = await self._standing(actor, conversation_id)
        self._require(check(Move.UNBAN, conversation.kind, me))
        ban = await self.store.get_ban(conversation_id, user_id)
        if ban is None or not ban.active(now_ms()):
            raise not_found("ban")
        if not await self.store.remove_ban(conversation_id, user_id):
            raise not_found("ban")
        await self.audit.record(
            "member.unbanned", actor_id=actor.id, target=f"{conversation_id}:{user_id}"
        )

    async def bans(self, actor: User, conversation_id: int) -> list[Ban]:
        conversation, _, me = await self._standing(actor, conversation_id)
        self._require(check(Move.UNBAN, conversation.kind, me))
        # An expired ban simply stops applying: it is not listed, and nothing happens
        # when it ends (the banned user was removed when banned), so no sweep is needed.
        return await self.store.list_bans(conversation_id, now_ms())

    async def mute(
        self, actor: User, conversation_id: int, user_id: int, *, duration: int | None = None
    ) -> Member:
        """Keep a member, who still reads, from sending (``MUTED``) until it ends."""
        conversation, _, me = await self._standing(actor, conversation_id)
        _, them = await self._target(conversation_id, user_id)
        self._require(
            check(Move.MUTE, conversation.kind, me, them, self_target=user_id == actor.id)
        )
        until = _until(duration, now_ms())
        return await self._set_mute(actor, conversation_id, user_id, until)

    async def unmute(self, actor: User, conversation_id: int, user_id: int) -> Member:
        conversation, _, me = await self._standing(actor, conversation_id)
        _, them = await self._target(conversation_id, user_id)
        self._require(
            check(Move.UNMUTE, conversation.kind, me, them, self_target=user_id == actor.id)
        )
        return await self._set_mute(actor, conversation_id, user_id, None)

    async def _set_mute(
        self, actor: User, conversation_id: int, user_id: int, until: int | None
    ) -> Member:
        if not await self.store.set_member_mute(conversation_id, user_id, until):
            raise not_found("member")
        await self._signal("mute", conversation_id=conversation_id, user_id=user_id, until=until)
        member = await self.store.get_member(conversation_id, user_id)
        if member is None:
            raise not_found("member")
        name = await self._name(user_id)
        verb = "muted" if until is not None else "unmuted"
        await self.messaging.post_system(conversation_id, Notice.of(actor, f" {verb} ", name))
        await self.messaging.member_updated(member)
        await self.audit.record(
            f"member.{verb}",
            actor_id=actor.id,
            target=f"{conversation_id}:{user_id}",
            until=wire_until(until),
        )
        return member

    async def set_role(self, actor: User, conversation_id: int, user_id: int, role: Role) -> Member:
        """Promote or demote a member; ``owner`` hands ownership on (the old owner
        becomes an admin)."""
        conversation, _, me = await self._standing(actor, conversation_id)
        target, them = await self._target(conversation_id, user_id)
        self._require(
            check(
                Move.SET_ROLE,
                conversation.kind,
                me,
                them,
                new_role=role,
                self_target=user_id == actor.id,
            )
        )
        if target is None:
            raise not_found("member")
        if role is Role.OWNER:
            await self.store.transfer_ownership(conversation_id, actor.id, user_id)
            old = await self.store.get_member(conversation_id, actor.id)
            if old is not None:
                await self.messaging.member_updated(old)
        elif not await self.store.set_member_role(conversation_id, user_id, role):
            raise not_found("member")
        member = await self.store.get_member(conversation_id, user_id)
        if member is None:
            raise not_found("member")
        name = await self._name(user_id)
        await self.messaging.post_system(
            conversation_id, Notice.of(actor, " made ", name, f" {role.value}")
        )
        await self.messaging.member_updated(member)
        await self.audit.record(
            "member.role_changed",
            actor_id=actor.id,
            target=f"{conversation_id}:{user_id}",
            role=role.value,
        )
        return member

    # -- joining rules -------------------------------------------------------------------

    async def check_join(self, user_id: int, conversation_id: int) -> None:
        """``BANNED`` while a ban is in force (joins, adds and invites call this)."""
        ban = await self.store.get_ban(conversation_id, user_id)
        if ban is not None and ban.active(now_ms()):
            raise PalaverError(
                ErrorCode.BANNED,
                "banned from this conversation",
                details={"until": ban.until},
            )

    async def check_direct(self, user: User, other: User) -> None:
        """Whether ``user`` may open a direct conversation with ``other`` (see
        :meth:`unreachable`). The refusal says no more."""
        if await self.unreachable(user, [other]):
            raise PalaverError(ErrorCode.FORBIDDEN, UNREACHABLE)

    async def check_add(self, actor: User, users: Sequence[User], *, field: str) -> None:
        """Refuse, as a whole, to add to a room or group anyone ``actor`` may not open a
        direct conversation with: otherwise a group would carry what a block or a
        ``contacts`` policy keeps out of direct messages, and being in one makes its
        members contacts. The error names them, and says of each no more than a
        direct message would."""
        refused = await self.unreachable(actor, users)
        if not refused:
            return
        names = ", ".join(u.handle for u in refused[:MAX_NAMED])
        if len(refused) > MAX_NAMED:
            names += f" and {len(refused) - MAX_NAMED} more"
        why = UNREACHABLE if len(refused) == 1 else "you cannot message these users"
        raise PalaverError(
            ErrorCode.FORBIDDEN,
            f"you cannot add {names}: {why}",
            field=field,
            details={"user_ids": [u.id for u in refused]},
        )

    async def unreachable(self, user: User, others: Sequence[User]) -> list[User]:
        """Those of ``others`` whom ``user`` may not reach: a block either way, or a
        ``contacts`` policy of theirs while ``user`` shares no conversation with them.
        Opening a direct conversation and adding someone to a room or group both ask
        this; nobody is kept from themselves."""
        await self._ready()
        refused: set[int] = set()
        open_policy: list[User] = []
        for other in others:
            if other.id == user.id:
                continue
            if self.state.blocks_between(user.id, other.id):
                refused.add(other.id)
            else:
                open_policy.append(other)
        # The policy governs opening a conversation; once a direct one is open, the
        # guard and blocks govern it. Known pairs skip the lookup, so sends addressed by
        # ``to`` cost no query more than before.
        pairs = {o.id: (min(user.id, o.id), max(user.id, o.id)) for o in open_policy}
        unknown = [o for o in open_policy if pairs[o.id] not in self._directs]
        if unknown:
            found = await self.store.direct_ids(pairs[o.id] for o in unknown)
            for pair in found:
                self.known_direct(*pair)
            unknown = [o for o in unknown if pairs[o.id] not in found]
        contacts: set[int] | None = None
        for other in unknown:
            policy = await self.store.get_dm_policy(other.id) or self.settings.dm_policy_default
            if policy != DmPolicy.CONTACTS:
                continue
            if contacts is None:
                # Sharing a conversation is symmetric: the user's own contacts answer
                # for every one of the others in one query.
                contacts = await self.store.contacts(user.id)
            if other.id not in contacts:
                refused.add(other.id)
        return [o for o in others if o.id in refused]

    # -- invites -------------------------------------------------------------------------

    async def create_invite(
        self,
        actor: User,
        conversation_id: int,
        *,
        duration: int | None = None,
        max_uses: int | None = None,
    ) -> Invite:
        conversation, _, me = await self._standing(actor, conversation_id)
        self._require(check(Move.INVITE, conversation.kind, me))
        now = now_ms()
        invite = Invite(
            code=secrets.token_urlsafe(INVITE_CODE_BYTES),
            conversation_id=conversation_id,
            created_by=actor.id,
            created_at=now,
            expires_at=None if duration is None else now + duration * 1000,
            max_uses=max_uses,
            uses=0,
        )
        await self.store.create_invite(invite)
        await self.audit.record(
            "invite.created",
            actor_id=actor.id,
            target=str(conversation_id),
            expires_at=invite.expires_at,
            max_uses=max_uses,
        )
        return invite

    async def invites(self, actor: User, conversation_id: int) -> list[Invite]:
        conversation, _, me = await self._standing(actor, conversation_id)
        self._require(check(Move.INVITE, conversation.kind, me))
        return await self.store.list_invites(conversation_id)

    async def revoke_invite(self, actor: User, code: str) -> None:
        invite = await self.store.get_invite(code)
        if invite is None:
            raise not_found("invite")
        conversation, _, me = await self._standing(actor, invite.conversation_id)
        self._require(check(Move.INVITE, conversation.kind, me))
        await self.store.revoke_invite(code, now_ms())
        await self.audit.record(
            "invite.revoked", actor_id=actor.id, target=str(invite.conversation_id)
        )

    async def join_by_invite(self, user: User, code: str) -> tuple[Conversation, bool]:
        """Join through a link. Unknown, revoked, expired and used-up codes all answer
        ``NOT_FOUND``, so codes cannot be probed."""
        invite = await self.store.get_invite(code)
        now = now_ms()
        if invite is None or not invite.usable(now):
            raise not_found("invite")
        conversation = await self.store.get_conversation(invite.conversation_id)
        if conversation is None:
            raise not_found("invite")
        if await self.store.get_member(conversation.id, user.id) is not None:
            return conversation, False
        await self.check_join(user.id, conversation.id)
        if await self.store.use_invite(code, now) is None:
            raise not_found("invite")
        member = await self.store.add_member(conversation.id, user.id, Role.MEMBER, now)
        if member is None:
            return conversation, False
        await self._tell(user.id, "joined", conversation.id)
        await self.messaging.post_system(conversation.id, Notice.of(user, " joined"))
        await self.audit.record("invite.used", actor_id=user.id, target=str(conversation.id))
        if member.role is Role.OWNER:
            await crown(self.store, self.messaging, self.audit, member, user.id, "joined_ownerless")
        return conversation, True

    # -- content filter ------------------------------------------------------------------

    async def get_filter(self, actor: User, conversation_id: int) -> dict[str, Any]:
        conversation, _, me = await self._standing(actor, conversation_id)
        self._require(check(Move.FILTER, conversation.kind, me))
        await self._ready()
        words, action = self.state.filters.get(conversation_id, ((), None))
        return {
            "conversation_id": conversation_id,
            "words": list(words),
            "action": action,
            "effective_action": self.filter_for(conversation_id)[1].value,
        }

    async def set_filter(
        self, actor: User, conversation_id: int, words: list[str], action: str | None
    ) -> dict[str, Any]:
        conversation, _, me = await self._standing(actor, conversation_id)
        self._require(check(Move.FILTER, conversation.kind, me))
        try:
            normalised = normalise_words(words)
        except ValueError as exc:
            raise PalaverError(ErrorCode.VALIDATION_ERROR, str(exc), field="words") from exc
        if action is not None:
            action = FilterAction(action).value
        await self._ready()
        await self.store.set_conversation_filter(conversation_id, normalised, action)
        await self._signal(
            "filter", conversation_id=conversation_id, words=list(normalised), action=action
        )
        await self.audit.record(
            "filter.changed",
            actor_id=actor.id,
            target=str(conversation_id),
            words=len(normalised),
            filter_action=action,
        )
        return await self.get_filter(actor, conversation_id)

    # -- blocks and privacy --------------------------------------------------------------

    async def block(self, user: User, other_id: int) -> bool:
        if other_id == user.id:
            raise PalaverError(ErrorCode.VALIDATION_ERROR, "you cannot block yourself")
        other = await self.store.get_user(other_id)
        if other is None:
            raise not_found("user")
        await self._ready()
        added = await self.store.add_block(user.id, other_id, now_ms())
        direct = (await self.store.direct_ids([(user.id, other_id)])).get(
            (min(user.id, other_id), max(user.id, other_id))
        )
        await self._signal("block", user_id=user.id, blocked_id=other_id, on=True, direct=direct)
        if added:
            await self.audit.record("user.blocked", actor_id=user.id, target=str(other_id))
        return added

    async def unblock(self, user: User, other_id: int) -> bool:
        await self._ready()
        removed = await self.store.remove_block(user.id, other_id)
        direct = (await self.store.direct_ids([(user.id, other_id)])).get(
            (min(user.id, other_id), max(user.id, other_id))
        )
        await self._signal("block", user_id=user.id, blocked_id=other_id, on=False, direct=direct)
        if removed:
            await self.audit.record("user.unblocked", actor_id=user.id, target=str(other_id))
        return removed

    async def blocks(self, user: User) -> list[tuple[int, int]]:
        return await self.store.list_blocks(user.id)

    async def dm_policy(self, user: User) -> str:
        return await self.store.get_dm_policy(user.id) or self.settings.dm_policy_default

    def known_direct(self, a: int, b: int) -> None:
        """Remember that two users have a direct conversation (bounded, LRU)."""
        pair = (min(a, b), max(a, b))
        self._directs[pair] = None
        self._directs.move_to_end(pair)
        if len(self._directs) > KNOWN_DIRECTS:
            self._directs.popitem(last=False)

    async def set_dm_policy(self, user: User, policy: str) -> str:
        policy = DmPolicy(policy).value
        await self.store.set_dm_policy(user.id, policy)
        return policy

    # -- reports -------------------------------------------------------------------------

    async def report(self, user: User, message_id: int, reason: str) -> Report:
        """Report a message to the server admins (members of its conversation only)."""
        message = await self.store.get_message(message_id)
        if message is None:
            raise not_found("message")
        if await self.store.get_member(message.conversation_id, user.id) is None:
            raise not_found("message")
        report = await self.store.add_report(
            message.id, message.conversation_id, user.id, reason, now_ms()
        )
        await self.audit.record(
            "message.reported",
            actor_id=user.id,
            target=str(message.id),
            report_id=report.id,
            conversation_id=message.conversation_id,
        )
        return report

    async def resolve_report(self, admin: User, report_id: int, resolution: str) -> Report:
        resolved = await self.store.resolve_report(report_id, admin.id, now_ms(), resolution)
        if resolved is None:
            raise not_found("open report")
        await self.audit.record(
            "report.resolved", actor_id=admin.id, target=str(report_id), resolution=resolution
        )
        return resolved

    # -- notification settings -----------------------------------------------------------

    async def set_notifications(
        self,
        user: User,
        conversation_id: int,
        *,
        level: NotifyLevel | None = None,
        mute: int | bool | None = None,
    ) -> Member:
        """Change the caller's own settings for one conversation; every socket of
        theirs hears of it (``notifications`` frame)."""
        _, member = await self.conversations.get(user.id, conversation_id)
        new_level = level.value if level is not None else member.notify_level
        until = member.notify_muted_until
        if mute is True:
            until = FOREVER
        elif mute is False:
            until = None
        elif mute is not None:
            until = now_ms() + int(mute) * 1000
        updated = await self.store.set_notifications(conversation_id, user.id, new_level, until)
        if updated is None:
            raise not_found()
        with contextlib.suppress(BrokerUnavailable):
            await self.broker.publish(
                signals.user_channel(user.id),
                signals.encode(
                    "user_event",
                    user_id=user.id,
                    frame={
                        "type": "notifications",
                        "conversation_id": conversation_id,
                        **notifications(updated),
                    },
                ),
            )
        return updated

    # -- socket frames -------------------------------------------------------------------

    async def run(self, user: User, op: ModerationOp) -> dict[str, Any]:
        """Carry out one socket frame; the fields of its ``result`` reply."""
        cid = op.conversation_id or 0
        uid = op.user_id or 0
        match op.action:
            case "kick":
                await self.kick(user, cid, uid)
                return {"ok": True}
            case "ban":
                ban = await self.ban(user, cid, uid, duration=op.duration, reason=op.reason)
                return {"ban": ban_out(ban)}
            case "unban":
                await self.unban(user, cid, uid)
                return {"ok": True}
            case "mute":
                member = await self.mute(user, cid, uid, duration=op.duration)
                return {"member": {"user_id": uid, **member_state(member)}}
            case "unmute":
                member = await self.unmute(user, cid, uid)
                return {"member": {"user_id": uid, **member_state(member)}}
            case "set_role":
                assert op.role is not None
                member = await self.set_role(user, cid, uid, op.role)
                return {"member": {"user_id": uid, "role": member.role.value}}
            case "create_invite":
                invite = await self.create_invite(
                    user, cid, duration=op.duration, max_uses=op.max_uses
                )
                return {"invite": invite_out(invite)}
            case "list_invites":
                return {"invites": [invite_out(i) for i in await self.invites(user, cid)]}
            case "revoke_invite":
                assert op.code is not None
                await self.revoke_invite(user, op.code)
                return {"ok": True}
            case "join_invite":
                assert op.code is not None
                conversation, joined = await self.join_by_invite(user, op.code)
                count = await self.store.count_members(conversation.id)
                return {"conversation": events.conversation(conversation, count), "joined": joined}
            case "block":
                return {"blocked": await self.block(user, uid)}
            case "unblock":
                return {"unblocked": await self.unblock(user, uid)}
            case "list_blocks":
                return {
                    "blocks": [
                        {"user_id": b, "created_at": at} for b, at in await self.blocks(user)
                    ]
                }
            case "set_notifications":
                member = await self.set_notifications(user, cid, level=op.level, mute=op.mute)
                return {"conversation_id": cid, "notifications": notifications(member)}
        raise PalaverError(ErrorCode.UNKNOWN_TYPE, "unsupported command")
