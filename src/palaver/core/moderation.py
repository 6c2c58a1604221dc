"""Records of moderation and safety (bans, invites, reports) and their time rules."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from palaver.core.models import Member, now_ms

#: ``muted_until`` / ``notify_muted_until`` of a mute without end (fits a BIGINT).
FOREVER = 2**62


class DmPolicy(StrEnum):
    EVERYONE = "everyone"  # anyone may open a direct conversation
    CONTACTS = "contacts"  # only people who already share a conversation


class NotifyLevel(StrEnum):
    ALL = "all"
    MENTIONS = "mentions"
    NONE = "none"


def active_until(until: int | None, now: int) -> bool:
    """Whether a mute or ban ending at ``until`` (``None``: not set) is in force."""
    return until is not None and until > now


def wire_until(until: int | None) -> int | None:
    """A stored end time as clients see it: ``None`` for "for ever" and "not set"."""
    return None if until is None or until >= FOREVER else until


def notifications(member: Member) -> dict[str, Any]:
    """A member's notification settings as clients see them."""
    muted = active_until(member.notify_muted_until, now_ms())
    return {
        "level": member.notify_level,
        "muted": muted,
        "muted_until": wire_until(member.notify_muted_until) if muted else None,
    }


def member_state(member: Member) -> dict[str, Any]:
    """The moderation state of a member as every member sees it."""
    muted = active_until(member.muted_until, now_ms())
    return {
        "muted": muted,
        "muted_until": wire_until(member.muted_until) if muted else None,
    }


@dataclass(frozen=True, slots=True)
class Ban:
    conversation_id: int
    user_id: int
    until: int | None  # None: until lifted
    banned_by: int | None
    at: int
    reason: str | None = None

    def active(self, now: int) -> bool:
        return self.until is None or self.until > now


@dataclass(frozen=True, slots=True)
class Invite:
    code: str
    conversation_id: int
    created_by: int | None
    created_at: int
    expires_at: int | None
    max_uses: int | None
    uses: int
    revoked_at: int | None = None

    def usable(self, now: int) -> bool:
        return (
            self.revoked_at is None
            and (self.expires_at is None or self.expires_at > now)
            and (self.max_uses is None or self.uses < self.max_uses)
        )


@dataclass(frozen=True, slots=True)
class Report:
    id: int
    message_id: int
    conversation_id: int
    reporter_id: int
    reason: str
    created_at: int
    resolved_at: int | None = None
    resolved_by: int | None = None
    resolution: str | None = None
