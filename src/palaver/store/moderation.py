"""Storage of moderation and safety: mutes, bans, invites, blocks, reports, word
filters, direct-message privacy, notification settings and the audit search.

:class:`ModerationStore` is the interface (part of :class:`~palaver.store.base.Store`);
:class:`SqlModeration` implements it for both SQL engines.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from palaver.core.models import AuditEvent, Member, Role
from palaver.core.moderation import Ban, Invite, Report
from palaver.store.schema import (
    audit_log,
    bans,
    blocks,
    conversation_filters,
    conversations,
    invites,
    members,
    mutes,
    reports,
    user_privacy,
)

T = TypeVar("T")


class ModerationStore(abc.ABC):
    """Moderation and safety state. Conventions are those of the Store."""

    # -- member state ------------------------------------------------------------------

    @abc.abstractmethod
    async def set_member_mute(self, conversation_id: int, user_id: int, until: int | None) -> bool:
        """Mute a member until ``until`` (``None`` lifts it); ``False`` for a non-member.

        The mute outlives the membership: leaving, a kick or a ban keep it, and a new
        membership of the same user (:meth:`add_member`) starts muted until it ends."""

    @abc.abstractmethod
    async def active_mutes(self, now: int) -> list[tuple[int, int, int]]:
        """``(conversation_id, user_id, until)`` of every mute still in force, members
        or not."""

    @abc.abstractmethod
    async def set_notifications(
        self, conversation_id: int, user_id: int, level: str, muted_until: int | None
    ) -> Member | None:
        """Set a member's notification level and mute; ``None`` for a non-member."""

    @abc.abstractmethod
    async def transfer_ownership(self, conversation_id: int, old: int, new: int) -> bool:
        """Make ``new`` the owner and ``old`` an admin, in one transaction."""

    # -- bans --------------------------------------------------------------------------

    @abc.abstractmethod
    async def ban_member(self, ban: Ban) -> bool:
        """Record (or replace) a ban and remove the membership in one transaction;
        return whether the user was a member."""

    @abc.abstractmethod
    async def get_ban(self, conversation_id: int, user_id: int) -> Ban | None:
        """The ban of a user in a conversation, expired or not."""

    @abc.abstractmethod
    async def remove_ban(self, conversation_id: int, user_id: int) -> bool:
        """Lift a ban; ``False`` when there was none."""

    @abc.abstractmethod
    async def list_bans(self, conversation_id: int, now: int | None = None) -> list[Ban]:
        """The bans of a conversation, newest first; with ``now``, only those still in
        force then."""

    # -- invites -----------------------------------------------------------------------

    @abc.abstractmethod
    async def create_invite(self, invite: Invite) -> None:
        """Store a new invite link."""

    @abc.abstractmethod
    async def get_invite(self, code: str) -> Invite | None:
        """The invite with this code, usable or not."""

    @abc.abstractmethod
    async def list_invites(self, conversation_id: int) -> list[Invite]:
        """A conversation's invites, newest first."""

    @abc.abstractmethod
    async def revoke_invite(self, code: str, at: int) -> bool:
        """Revoke an invite; ``False`` when unknown or already revoked."""

    @abc.abstractmethod
    async def use_invite(self, code: str, at: int) -> Invite | None:
        """Count one use of a usable invite atomically (never past ``max_uses``, even
        with concurrent callers); ``None`` when it is unknown, revoked, expired or
        used up."""

    # -- blocks ------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_block(self, user_id: int, blocked_id: int, at: int) -> bool:
        """``user_id`` blocks ``blocked_id``; ``False`` if already blocked."""

    @abc.abstractmethod
    async def remove_block(self, user_id: int, blocked_id: int) -> bool:
        """Lift a block; ``False`` if there was none."""

    @abc.abstractmethod
    async def list_blocks(self, user_id: int) -> list[tuple[int, int]]:
        """``(blocked_id, created_at)`` of everyone ``user_id`` blocks."""

    @abc.abstractmethod
    async def all_blocks(self) -> list[tuple[int, int]]:
        """Every ``(user_id, blocked_id)`` pair (blocks are few; nodes cache them)."""

    @abc.abstractmethod
    async def direct_ids(self, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], int]:
        """The direct conversation id of each pair of users that has one, keyed by the
        ``(low, high)`` pair."""

    # -- reports -----------------------------------------------------------------------

    @abc.abstractmethod
    async def add_report(
        self, message_id: int, conversation_id: int, reporter_id: int, reason: str, at: int
    ) -> Report:
        """File a report."""

    @abc.abstractmethod
    async def list_reports(
        self, *, open_only: bool = True, before_id: int | None = None, limit: int = 50
    ) -> list[Report]:
        """Reports newest first, paged by ``before_id``."""

    @abc.abstractmethod
    async def resolve_report(
        self, report_id: int, by: int, at: int, resolution: str
    ) -> Report | None:
        """Close an open report; ``None`` when unknown or already closed."""

    # -- filters and privacy -----------------------------------------------------------

    @abc.abstractmethod
    async def set_conversation_filter(
        self, conversation_id: int, words: Sequence[str], action: str | None
    ) -> None:
        """Set a conversation's own words and action (empty and ``None`` remove it)."""

    @abc.abstractmethod
    async def conversation_filters(self) -> dict[int, tuple[list[str], str | None]]:
        """Every conversation filter, keyed by conversation id."""

    @abc.abstractmethod
    async def get_dm_policy(self, user_id: int) -> str | None:
        """Who may start a direct conversation with the user (``None``: the default)."""

    @abc.abstractmethod
    async def set_dm_policy(self, user_id: int, policy: str) -> None:
        """Store the user's direct-message policy."""

    # -- audit -------------------------------------------------------------------------

    @abc.abstractmethod
    async def search_audit(
        self,
        *,
        limit: int = 50,
        before_id: int | None = None,
        action: str | None = None,
        actor_id: int | None = None,
        target: str | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> list[AuditEvent]:
        """Audit events newest first, paged by ``before_id``; ``action`` ending in
        ``.`` or ``*`` matches a prefix (``member.*``); ``since``/``until`` bound
        ``at`` (inclusive, exclusive)."""


R = TypeVar("R", Ban, Invite, Report)


def _record(cls: type[R], m: Any) -> R:
    """A record from a row whose columns carry the record's field names."""
    return cls(**{f.name: m[f.name] for f in fields(cls)})


class SqlModeration(ModerationStore):
    """:class:`ModerationStore` on SQLAlchemy Core; mixed into the SQL store, whose
    named transactions it runs in."""

    @abc.abstractmethod
    async def _txn(
        self, name: str, fn: Callable[[AsyncConnection], Awaitable[T]], *, write: bool = True
    ) -> T:
        """Provided by the SQL store."""

    async def _rows(self, name: str, stmt: Any) -> list[Any]:
        async def txn(conn: AsyncConnection) -> list[Any]:
            return list(await conn.execute(stmt))

        return await self._txn(name, txn, write=False)

    async def _changed(self, name: str, stmt: Any) -> int:
        async def txn(conn: AsyncConnection) -> int:
            return int((await conn.execute(stmt)).rowcount)

        return await self._txn(name, txn)

    # -- member state ------------------------------------------------------------------

    async def set_member_mute(self, conversation_id: int, user_id: int, until: int | None) -> bool:
        async def txn(conn: AsyncConnection) -> bool:
            changed = await conn.execute(
                update(members)
                .where(members.c.conversation_id == conversation_id, members.c.user_id == user_id)
                .values(muted_until=until)
            )
            if not changed.rowcount:
                return False
            await conn.execute(
                delete(mutes).where(
                    mutes.c.conversation_id == conversation_id, mutes.c.user_id == user_id
                )
            )
            if until is not None:
                await conn.execute(
                    insert(mutes).values(
                        conversation_id=conversation_id, user_id=user_id, until=until
                    )
                )
            return True

        return await self._txn("set_member_mute", txn)

    async def _standing_mute(
        self, conn: AsyncConnection, conversation_id: int, user_id: int
    ) -> int | None:
        """The mute a new membership starts with (the SQL store's ``add_member`` calls
        this in its transaction)."""
        stmt = select(mutes.c.until).where(
            mutes.c.conversation_id == conversation_id, mutes.c.user_id == user_id
        )
        until = (await conn.execute(stmt)).scalar_one_or_none()
        return None if until is None else int(until)

    async def active_mutes(self, now: int) -> list[tuple[int, int, int]]:
        stmt = select(mutes.c.conversation_id, mutes.c.user_id, mutes.c.until).where(
            mutes.c.until > now
        )
        return [(r[0], r[1], r[2]) for r in await self._rows("active_mutes", stmt)]

    async def set_notifications(
        self, conversation_id: int, user_id: int, level: str, muted_until: int | None
    ) -> Member | None:
        from palaver.store.sql import _member

        where = and_(members.c.conversation_id == conversation_id, members.c.user_id == user_id)

        async def txn(conn: AsyncConnection) -> Member | None:
            await conn.execute(
                update(members)
                .where(where)
                .values(notify_level=level, notify_muted_until=muted_until)
            )
            row = (await conn.execute(select(members).where(where))).first()
            return _member(row._mapping) if row else None

        return await self._txn("set_notifications", txn)

    async def transfer_ownership(self, conversation_id: int, old: int, new: int) -> bool:
        async def txn(conn: AsyncConnection) -> bool:
            def set_role(uid: int, role: Role) -> Any:
                return (
                    update(members)
                    .where(members.c.conversation_id == conversation_id, members.c.user_id == uid)
                    .values(role=role.value)
                )

            if (await conn.execute(set_role(new, Role.OWNER))).rowcount == 0:
                return False
            await conn.execute(set_role(old, Role.ADMIN))
            return True

        return await self._txn("transfer_ownership", txn)

    # -- bans --------------------------------------------------------------------------

    async def ban_member(self, ban: Ban) -> bool:
        async def txn(conn: AsyncConnection) -> bool:
            await conn.execute(
                delete(bans).where(
                    bans.c.conversation_id == ban.conversation_id, bans.c.user_id == ban.user_id
                )
            )
            await conn.execute(
                insert(bans).values(
                    conversation_id=ban.conversation_id,
                    user_id=ban.user_id,
                    until=ban.until,
                    banned_by=ban.banned_by,
                    at=ban.at,
                    reason=ban.reason,
                )
            )
            removed = await conn.execute(
                delete(members).where(
                    members.c.conversation_id == ban.conversation_id,
                    members.c.user_id == ban.user_id,
                )
            )
            return bool(removed.rowcount)

        return await self._txn("ban_member", txn)

    async def get_ban(self, conversation_id: int, user_id: int) -> Ban | None:
        stmt = select(bans).where(
            bans.c.conversation_id == conversation_id, bans.c.user_id == user_id
        )
        rows = await self._rows("get_ban", stmt)
        return _record(Ban, rows[0]._mapping) if rows else None

    async def remove_ban(self, conversation_id: int, user_id: int) -> bool:
        stmt = delete(bans).where(
            bans.c.conversation_id == conversation_id, bans.c.user_id == user_id
        )
        return await self._changed("remove_ban", stmt) > 0

    async def list_bans(self, conversation_id: int, now: int | None = None) -> list[Ban]:
        stmt = (
            select(bans)
            .where(bans.c.conversation_id == conversation_id)
            .order_by(bans.c.at.desc(), bans.c.user_id)
        )
        if now is not None:
            stmt = stmt.where(or_(bans.c.until.is_(None), bans.c.until > now))
        return [_record(Ban, r._mapping) for r in await self._rows("list_bans", stmt)]

    # -- invites -----------------------------------------------------------------------

    async def create_invite(self, invite: Invite) -> None:
        stmt = insert(invites).values(
            code=invite.code,
            conversation_id=invite.conversation_id,
            created_by=invite.created_by,
            created_at=invite.created_at,
            expires_at=invite.expires_at,
            max_uses=invite.max_uses,
            uses=invite.uses,
            revoked_at=invite.revoked_at,
        )
        await self._changed("create_invite", stmt)

    async def get_invite(self, code: str) -> Invite | None:
        rows = await self._rows("get_invite", select(invites).where(invites.c.code == code))
        return _record(Invite, rows[0]._mapping) if rows else None

    async def list_invites(self, conversation_id: int) -> list[Invite]:
        stmt = (
            select(invites)
            .where(invites.c.conversation_id == conversation_id)
            .order_by(invites.c.created_at.desc(), invites.c.code)
        )
        return [_record(Invite, r._mapping) for r in await self._rows("list_invites", stmt)]

    async def revoke_invite(self, code: str, at: int) -> bool:
        stmt = (
            update(invites)
            .where(invites.c.code == code, invites.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return await self._changed("revoke_invite", stmt) > 0

    async def use_invite(self, code: str, at: int) -> Invite | None:
        async def txn(conn: AsyncConnection) -> Invite | None:
            # One conditional UPDATE: concurrent users of the last use cannot both pass.
            counted = await conn.execute(
                update(invites)
                .where(
                    invites.c.code == code,
                    invites.c.revoked_at.is_(None),
                    or_(invites.c.expires_at.is_(None), invites.c.expires_at > at),
                    or_(invites.c.max_uses.is_(None), invites.c.uses < invites.c.max_uses),
                )
                .values(uses=invites.c.uses + 1)
            )
            if not counted.rowcount:
                return None
            row = (await conn.execute(select(invites).where(invites.c.code == code))).first()
            return _record(Invite, row._mapping) if row else None

        return await self._txn("use_invite", txn)

    # -- blocks ------------------------------------------------------------------------

    async def add_block(self, user_id: int, blocked_id: int, at: int) -> bool:
        async def txn(conn: AsyncConnection) -> bool:
            found = await conn.execute(
                select(blocks.c.user_id).where(
                    blocks.c.user_id == user_id, blocks.c.blocked_id == blocked_id
                )
            )
            if found.first() is not None:
                return False
            await conn.execute(
                insert(blocks).values(user_id=user_id, blocked_id=blocked_id, created_at=at)
            )
            return True

        return await self._txn("add_block", txn)

    async def remove_block(self, user_id: int, blocked_id: int) -> bool:
        stmt = delete(blocks).where(blocks.c.user_id == user_id, blocks.c.blocked_id == blocked_id)
        return await self._changed("remove_block", stmt) > 0

    async def list_blocks(self, user_id: int) -> list[tuple[int, int]]:
        stmt = (
            select(blocks.c.blocked_id, blocks.c.created_at)
            .where(blocks.c.user_id == user_id)
            .order_by(blocks.c.created_at, blocks.c.blocked_id)
        )
        return [(r[0], r[1]) for r in await self._rows("list_blocks", stmt)]

    async def all_blocks(self) -> list[tuple[int, int]]:
        stmt = select(blocks.c.user_id, blocks.c.blocked_id)
        return [(r[0], r[1]) for r in await self._rows("all_blocks", stmt)]

    async def direct_ids(self, pairs: Iterable[tuple[int, int]]) -> dict[tuple[int, int], int]:
        keys = {f"{min(a, b)}:{max(a, b)}": (min(a, b), max(a, b)) for a, b in pairs}
        found: dict[tuple[int, int], int] = {}
        key_list = list(keys)
        for start in range(0, len(key_list), 500):
            stmt = select(conversations.c.direct_key, conversations.c.id).where(
                conversations.c.direct_key.in_(key_list[start : start + 500])
            )
            for row in await self._rows("direct_ids", stmt):
                found[keys[row[0]]] = row[1]
        return found

    # -- reports -----------------------------------------------------------------------

    async def add_report(
        self, message_id: int, conversation_id: int, reporter_id: int, reason: str, at: int
    ) -> Report:
        values: dict[str, Any] = {
            "message_id": message_id,
            "conversation_id": conversation_id,
            "reporter_id": reporter_id,
            "reason": reason,
            "created_at": at,
        }

        async def txn(conn: AsyncConnection) -> int:
            result = await conn.execute(insert(reports).values(values).returning(reports.c.id))
            return int(result.scalar_one())

        report_id = await self._txn("add_report", txn)
        return Report(id=report_id, **values)

    async def list_reports(
        self, *, open_only: bool = True, before_id: int | None = None, limit: int = 50
    ) -> list[Report]:
        stmt = select(reports).order_by(reports.c.id.desc()).limit(limit)
        if open_only:
            stmt = stmt.where(reports.c.resolved_at.is_(None))
        if before_id is not None:
            stmt = stmt.where(reports.c.id < before_id)
        return [_record(Report, r._mapping) for r in await self._rows("list_reports", stmt)]

    async def resolve_report(
        self, report_id: int, by: int, at: int, resolution: str
    ) -> Report | None:
        async def txn(conn: AsyncConnection) -> Report | None:
            changed = await conn.execute(
                update(reports)
                .where(reports.c.id == report_id, reports.c.resolved_at.is_(None))
                .values(resolved_at=at, resolved_by=by, resolution=resolution)
            )
            if not changed.rowcount:
                return None
            row = (await conn.execute(select(reports).where(reports.c.id == report_id))).first()
            return _record(Report, row._mapping) if row else None

        return await self._txn("resolve_report", txn)

    # -- filters and privacy -----------------------------------------------------------

    async def set_conversation_filter(
        self, conversation_id: int, words: Sequence[str], action: str | None
    ) -> None:
        async def txn(conn: AsyncConnection) -> None:
            await conn.execute(
                delete(conversation_filters).where(
                    conversation_filters.c.conversation_id == conversation_id
                )
            )
            if words or action is not None:
                await conn.execute(
                    insert(conversation_filters).values(
                        conversation_id=conversation_id, words=list(words), action=action
                    )
                )

        await self._txn("set_conversation_filter", txn)

    async def conversation_filters(self) -> dict[int, tuple[list[str], str | None]]:
        stmt = select(
            conversation_filters.c.conversation_id,
            conversation_filters.c.words,
            conversation_filters.c.action,
        )
        return {
            r[0]: (list(r[1] or []), r[2]) for r in await self._rows("conversation_filters", stmt)
        }

    async def get_dm_policy(self, user_id: int) -> str | None:
        stmt = select(user_privacy.c.dm_policy).where(user_privacy.c.user_id == user_id)
        rows = await self._rows("get_dm_policy", stmt)
        return str(rows[0][0]) if rows else None

    async def set_dm_policy(self, user_id: int, policy: str) -> None:
        async def txn(conn: AsyncConnection) -> None:
            await conn.execute(delete(user_privacy).where(user_privacy.c.user_id == user_id))
            await conn.execute(insert(user_privacy).values(user_id=user_id, dm_policy=policy))

        await self._txn("set_dm_policy", txn)

    # -- audit -------------------------------------------------------------------------

    async def search_audit(
        self,
        *,
        limit: int = 50,
        before_id: int | None = None,
        action: str | None = None,
        actor_id: int | None = None,
        target: str | None = None,
        since: int | None = None,
        until: int | None = None,
    ) -> list[AuditEvent]:
        from palaver.store.sql import _audit

        stmt = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if before_id is not None:
            stmt = stmt.where(audit_log.c.id < before_id)
        if action is not None:
            if action.endswith(("*", ".")):
                prefix = action.rstrip("*")
                stmt = stmt.where(audit_log.c.action.startswith(prefix, autoescape=True))
            else:
                stmt = stmt.where(audit_log.c.action == action)
        if actor_id is not None:
            stmt = stmt.where(audit_log.c.actor_id == actor_id)
        if target is not None:
            stmt = stmt.where(audit_log.c.target == target)
        if since is not None:
            stmt = stmt.where(audit_log.c.at >= since)
        if until is not None:
            stmt = stmt.where(audit_log.c.at < until)
        return [_audit(r._mapping) for r in await self._rows("search_audit", stmt)]


__all__ = ["ModerationStore", "SqlModeration"]
