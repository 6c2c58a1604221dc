"""Socket frames of moderation, safety and notification settings, parsed (sans-I/O).

One typed record, :class:`ModerationOp`, carries any of them; :data:`ACTIONS` lists the
frame types and the fields each one requires. ``docs/protocol.md`` documents them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import Role
from palaver.core.moderation import NotifyLevel

MAX_DURATION = 10 * 365 * 24 * 3600  # seconds
MAX_INVITE_USES = 1_000_000
INVITE_CODE_MAX = 64
MAX_ID = 2**62

#: Frame type -> fields it requires (others are optional or ignored).
ACTIONS: dict[str, tuple[str, ...]] = {
    "kick": ("conversation_id", "user_id"),
    "ban": ("conversation_id", "user_id"),
    "unban": ("conversation_id", "user_id"),
    "mute": ("conversation_id", "user_id"),
    "unmute": ("conversation_id", "user_id"),
    "set_role": ("conversation_id", "user_id", "role"),
    "create_invite": ("conversation_id",),
    "revoke_invite": ("code",),
    "list_invites": ("conversation_id",),
    "join_invite": ("code",),
    "block": ("user_id",),
    "unblock": ("user_id",),
    "list_blocks": (),
    "set_notifications": ("conversation_id",),
}


@dataclass(frozen=True, slots=True)
class ModerationOp:
    action: str
    conversation_id: int | None = None
    user_id: int | None = None
    duration: int | None = None  # seconds; None: for ever (ban, mute, invite)
    role: Role | None = None
    code: str | None = None
    max_uses: int | None = None
    reason: str | None = None
    level: NotifyLevel | None = None
    # Notification mute: seconds, True for ever, False to lift, None to leave as is.
    mute: int | bool | None = None


def _bad(field: str, message: str) -> PalaverError:
    return PalaverError(ErrorCode.INVALID_FORMAT, message, field=field)


def _opt_int(raw: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(name, f"{name} must be an integer from {low} to {high}")
    return value


def _opt_id(raw: dict[str, Any], name: str) -> int | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(name, f"{name} must be a non-negative integer")
    # Ids fit a signed 64-bit column; a larger one would fail in the database.
    if value > MAX_ID:
        raise _bad(name, f"{name} is too large")
    return value


def parse(action: str, raw: dict[str, Any]) -> ModerationOp:
    """The operation of one frame whose ``type`` is a key of :data:`ACTIONS`."""
    for name in ACTIONS[action]:
        if raw.get(name) is None:
            raise _bad(name, f"{name} is required")
    role = raw.get("role")
    if role is not None and role not in {r.value for r in Role}:
        raise _bad("role", "role must be owner, admin or member")
    code = raw.get("code")
    if code is not None and (not isinstance(code, str) or not 0 < len(code) <= INVITE_CODE_MAX):
        raise _bad("code", "code must be a short string")
    reason = raw.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 256):
        raise _bad("reason", "reason must be a string of at most 256 characters")
    level = raw.get("level")
    if level is not None and level not in {v.value for v in NotifyLevel}:
        raise _bad("level", "level must be all, mentions or none")
    mute = raw.get("mute")
    if mute is not None and not isinstance(mute, bool):
        mute = _opt_int(raw, "mute", 1, MAX_DURATION)
    return ModerationOp(
        action=action,
        conversation_id=_opt_id(raw, "conversation_id"),
        user_id=_opt_id(raw, "user_id"),
        duration=_opt_int(raw, "duration", 1, MAX_DURATION),
        role=Role(role) if role is not None else None,
        code=code,
        max_uses=_opt_int(raw, "max_uses", 1, MAX_INVITE_USES),
        reason=reason,
        level=NotifyLevel(level) if level is not None else None,
        mute=mute,
    )
