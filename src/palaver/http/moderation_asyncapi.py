"""AsyncAPI entries of the moderation, safety and notification-settings frames."""

from __future__ import annotations

from typing import Any

INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
SECONDS = {"type": "integer", "minimum": 1, "description": "seconds; omit for no end"}
TARGET = {"conversation_id": INT, "user_id": INT}
UNTIL = {"type": ["integer", "null"], "description": "ms since the epoch; null: no end"}

CLIENT_FRAMES: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "kick": (
        "Remove a member (owners, admins); they may rejoin a public room.",
        TARGET,
        ["conversation_id", "user_id"],
    ),
    "ban": (
        "Remove a member and keep them out until `duration` ends (or for ever).",
        {**TARGET, "duration": SECONDS, "reason": {**STR, "maxLength": 256}},
        ["conversation_id", "user_id"],
    ),
    "unban": ("Lift a ban.", TARGET, ["conversation_id", "user_id"]),
    "mute": (
        "Refuse a member's sends (MUTED) for `duration` seconds or for ever.",
        {**TARGET, "duration": SECONDS},
        ["conversation_id", "user_id"],
    ),
    "unmute": ("Lift a mute.", TARGET, ["conversation_id", "user_id"]),
    "set_role": (
        "Promote or demote a member; `owner` hands ownership on (owner only).",
        {**TARGET, "role": {"enum": ["owner", "admin", "member"]}},
        ["conversation_id", "user_id", "role"],
    ),
    "create_invite": (
        "Create an invite link (owners, admins).",
        {"conversation_id": INT, "duration": SECONDS, "max_uses": {**INT, "minimum": 1}},
        ["conversation_id"],
    ),
    "list_invites": ("A conversation's invites.", {"conversation_id": INT}, ["conversation_id"]),
    "revoke_invite": ("Revoke an invite.", {"code": STR}, ["code"]),
    "join_invite": ("Join through an invite code.", {"code": STR}, ["code"]),
    "block": ("Block a user: no direct messages, no presence.", {"user_id": INT}, ["user_id"]),
    "unblock": ("Lift a block.", {"user_id": INT}, ["user_id"]),
    "list_blocks": ("The users the caller blocks.", {}, []),
    "set_notifications": (
        "The caller's notification settings for one conversation.",
        {
            "conversation_id": INT,
            "level": {"enum": ["all", "mentions", "none"]},
            "mute": {
                "oneOf": [BOOL, SECONDS],
                "description": "true: for ever; seconds; false: unmute",
            },
        },
        ["conversation_id"],
    ),
}

NOTIFICATIONS = {
    "level": {"enum": ["all", "mentions", "none"]},
    "muted": BOOL,
    "muted_until": UNTIL,
}

SERVER_FRAMES: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "member_updated": (
        "A member's role or moderation mute changed.",
        {
            "conversation_id": INT,
            "user_id": INT,
            "role": {"enum": ["owner", "admin", "member"]},
            "muted": BOOL,
            "muted_until": UNTIL,
        },
        ["conversation_id", "user_id", "role", "muted"],
    ),
    "notifications": (
        "The user's notification settings of a conversation changed (any device).",
        {"conversation_id": INT, **NOTIFICATIONS},
        ["conversation_id", "level", "muted"],
    ),
}
