"""Who may moderate whom: the rules of conversation roles, with no I/O.

Every moderation use case asks :func:`check` before touching the store, so the socket
and REST refuse the same moves with the same reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from palaver.core.models import ConversationKind, Role


class Move(StrEnum):
    KICK = "kick"
    BAN = "ban"
    UNBAN = "unban"
    MUTE = "mute"
    UNMUTE = "unmute"
    SET_ROLE = "set_role"
    INVITE = "invite"  # create, list and revoke invite links
    FILTER = "filter"  # set the conversation's word filter


#: Moves aimed at another member (the others act on the conversation).
TARGETED = frozenset({Move.KICK, Move.BAN, Move.MUTE, Move.UNMUTE, Move.SET_ROLE})


@dataclass(frozen=True, slots=True)
class Standing:
    """One person's position in a conversation: their role (``None`` for a
    non-member) and whether they administer the server."""

    role: Role | None
    server_admin: bool = False

    @property
    def moderator(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN) or (
            self.role is not None and self.server_admin
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str


def check(
    move: Move,
    kind: ConversationKind,
    actor: Standing,
    target: Standing | None = None,
    *,
    new_role: Role | None = None,
    self_target: bool = False,
) -> Refusal | None:
    """``None`` when ``actor`` may make ``move`` (on ``target``), else why not.

    Rules: direct conversations have no moderation; only owners, admins and server
    administrators who are members moderate; nobody acts on the owner or on themselves;
    an admin acts on members only, unless they administer the server; roles change
    only by the owner's (or a server administrator's) hand, and only the owner hands
    ownership on.
    """
    if kind is ConversationKind.DIRECT:
        return Refusal("direct conversations have no moderation")
    if not actor.moderator:
        return Refusal("only owners and admins moderate this conversation")
    if move not in TARGETED:
        return None
    if self_target:
        return Refusal("you cannot do this to yourself")
    if target is None or target.role is None:
        # Bans reach people who already left; nothing else has a non-member target.
        return None if move is Move.BAN else Refusal("not a member")
    if target.role is Role.OWNER:
        return Refusal("the owner cannot be moderated")
    if move is Move.SET_ROLE:
        if new_role is Role.OWNER and actor.role is not Role.OWNER:
            return Refusal("only the owner hands on ownership")
        if actor.role is not Role.OWNER and not actor.server_admin:
            return Refusal("only the owner changes roles")
        return None
    if target.role is Role.ADMIN and actor.role is not Role.OWNER and not actor.server_admin:
        return Refusal("only the owner moderates admins")
    return None
