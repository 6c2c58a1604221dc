"""Rich-message rules and client commands, sans-I/O: reactions, mentions, who may
moderate, and the ``edit``/``delete``/``react``/``pin``/``thread`` frames."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from palaver.core.accounts import ROOM_MENTIONS, mention_name
from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import MENTION_ROOM, ConversationKind, Member, Role, User
from palaver.core.protocol import (
    HISTORY_LIMIT,
    MAX_HISTORY_LIMIT,
    Command,
    _int,
    check_content,
    parse_limit,
    register,
)

#: Longest reaction, in code points: room for ZWJ sequences (a family is 7 to 11).
MAX_EMOJI_LENGTH = 16
_SHORTCODE = re.compile(r":[a-z0-9_+\-]{1,32}:")
# Code points that join or modify pictographs inside one emoji.
_JOINERS = {"\u200d", "\ufe0f", "\ufe0e", "\u20e3"}
# Usernames are letters, digits, "_", "-" and "." (core.accounts): "@ada," ends at ",".
_MENTION = re.compile(r"(?<![\w@.])@([A-Za-z0-9_.\-]{1,64})")


def check_emoji(emoji: object) -> str:
    """A reaction: one emoji (possibly a ZWJ sequence with modifiers) or a ``:shortcode:``;
    otherwise ``INVALID_FORMAT`` on field ``emoji``."""
    if not isinstance(emoji, str) or not emoji:
        raise PalaverError(ErrorCode.INVALID_FORMAT, "emoji is required", field="emoji")
    if _SHORTCODE.fullmatch(emoji):
        return emoji
    if len(emoji) > MAX_EMOJI_LENGTH:
        raise PalaverError(
            ErrorCode.INVALID_FORMAT,
            f"emoji is longer than {MAX_EMOJI_LENGTH} code points",
            field="emoji",
        )
    pictographs = 0
    for char in emoji:
        if char in _JOINERS:
            continue
        category = unicodedata.category(char)
        # So: symbols (pictographs, regional indicators); Sk: skin-tone modifiers;
        # Mn/Me: combining marks; Cf: tag characters of subdivision flags.
        if category in ("So", "Sk", "Mn", "Me", "Cf") and ord(char) > 0x7F:
            pictographs += category == "So"
            continue
        if char.isdigit() or char in "#*":
            continue  # keycaps (1️⃣, #️⃣) start with one
        raise PalaverError(ErrorCode.INVALID_FORMAT, "emoji is not an emoji", field="emoji")
    if pictographs == 0 and "\u20e3" not in emoji:
        raise PalaverError(ErrorCode.INVALID_FORMAT, "emoji is not an emoji", field="emoji")
    return emoji


def parse_mentions(content: str) -> tuple[str, ...]:
    """Lower-cased ``@names`` of ``content`` in order of appearance, once each;
    ``@room`` (and its aliases ``@all``, ``@channel``, ``@everyone``, which no username
    may be) appears as :data:`MENTION_ROOM`."""
    found: list[str] = []
    for match in _MENTION.finditer(content):
        name = mention_name(match.group(1))
        if name in ROOM_MENTIONS:
            name = MENTION_ROOM
        if name and name not in found:
            found.append(name)
    return tuple(found[:50])


def may_mention_room(kind: ConversationKind, member: Member | None, user: User) -> bool:
    """``@room`` notifies everyone: in rooms (public, possibly large) only owners, admins
    and server admins; in groups and direct conversations anyone."""
    if kind is not ConversationKind.ROOM:
        return True
    return user.is_admin or (member is not None and member.role is not Role.MEMBER)


def is_moderator(member: Member | None, user: User) -> bool:
    """Conversation owners and admins, and server admins."""
    return user.is_admin or (member is not None and member.role is not Role.MEMBER)


def may_pin(kind: ConversationKind, member: Member | None, user: User) -> bool:
    """Rooms: owners, admins (and server admins); groups and directs: every member."""
    if kind is ConversationKind.ROOM:
        return is_moderator(member, user)
    return member is not None


# -- client commands -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edit(Command):
    message_id: int
    content: str


@dataclass(frozen=True, slots=True)
class Delete(Command):
    message_id: int


@dataclass(frozen=True, slots=True)
class React(Command):
    message_id: int
    emoji: str
    add: bool  # False: take the reaction back


@dataclass(frozen=True, slots=True)
class Pin(Command):
    message_id: int
    pinned: bool


@dataclass(frozen=True, slots=True)
class Pins(Command):
    conversation_id: int


@dataclass(frozen=True, slots=True)
class Thread(Command):
    root_id: int
    after: int | None
    before: int | None
    limit: int


@dataclass(frozen=True, slots=True)
class ThreadRead(Command):
    root_id: int
    seq: int


RICH_COMMANDS = (Edit, Delete, React, Pin, Pins, Thread, ThreadRead)


def _required(raw: dict[str, Any], name: str) -> int:
    value = _int(raw, name)
    assert value is not None
    return value


def _bool(raw: dict[str, Any], name: str, default: bool) -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        raise PalaverError(ErrorCode.INVALID_FORMAT, f"{name} must be true or false", field=name)
    return value


def _parse_edit(raw: dict[str, Any], cid: str | int | None, max_length: int) -> Edit:
    content = check_content(raw.get("content"), max_length)
    return Edit(id=cid, message_id=_required(raw, "message_id"), content=content)


def _parse_react(raw: dict[str, Any], cid: str | int | None, _: int) -> React:
    return React(
        id=cid,
        message_id=_required(raw, "message_id"),
        emoji=check_emoji(raw.get("emoji")),
        add=not _bool(raw, "remove", False),
    )


def _parse_thread(raw: dict[str, Any], cid: str | int | None, _: int) -> Thread:
    return Thread(
        id=cid,
        root_id=_required(raw, "root_id"),
        after=_int(raw, "after", required=False),
        before=_int(raw, "before", required=False),
        limit=parse_limit(raw, "limit", default=HISTORY_LIMIT, maximum=MAX_HISTORY_LIMIT),
    )


RICH_PARSERS: dict[str, Any] = {
    "edit": _parse_edit,
    "delete": lambda raw, cid, _: Delete(id=cid, message_id=_required(raw, "message_id")),
    "react": _parse_react,
    "pin": lambda raw, cid, _: Pin(
        id=cid, message_id=_required(raw, "message_id"), pinned=_bool(raw, "pinned", True)
    ),
    "pins": lambda raw, cid, _: Pins(id=cid, conversation_id=_required(raw, "conversation_id")),
    "thread": _parse_thread,
    "thread_read": lambda raw, cid, _: ThreadRead(
        id=cid, root_id=_required(raw, "root_id"), seq=_required(raw, "seq")
    ),
}


register(RICH_PARSERS)
