"""System notices ("ada joined", "ada removed bob"): their text, and where in it each
user is named.

A notice is stored as the text every client shows, and the places of the names in it
beside it (``notice_names``). Deleting an account puts :data:`DELETED_USER` in place of
its name in every notice that names it, and nowhere else: a display name need not be
unique, and the rest of a notice (a room's new name, a topic) is free text that may
hold the same words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from palaver.core.models import User

#: What a deleted account is called in notices (and by clients, for its messages).
DELETED_USER = "Deleted user"


@dataclass(frozen=True, slots=True)
class NamedUser:
    """One name in a notice's text: the user and its place, in characters."""

    user_id: int
    start: int
    length: int


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice's text and the users it names."""

    text: str
    names: tuple[NamedUser, ...] = ()

    @classmethod
    def of(cls, *parts: str | User) -> Notice:
        """The notice that reads ``parts`` joined, each user by its handle:
        ``Notice.of(actor, " added ", user)``."""
        pieces: list[str] = []
        names: list[NamedUser] = []
        at = 0
        for part in parts:
            piece = part if isinstance(part, str) else part.handle
            if not isinstance(part, str) and piece:
                names.append(NamedUser(part.id, at, len(piece)))
            pieces.append(piece)
            at += len(piece)
        return cls("".join(pieces), tuple(names))


def without_user(
    text: str, names: Iterable[NamedUser], user_id: int
) -> tuple[str, tuple[NamedUser, ...]]:
    """``text`` with :data:`DELETED_USER` in place of every name of ``user_id``, and the
    places of all its names in the new text. A place that does not fit the text (or
    overlaps another) is dropped."""
    pieces: list[str] = []
    placed: list[NamedUser] = []
    read = 0  # in text
    written = 0  # in the new text
    for name in sorted(names, key=lambda n: n.start):
        end = name.start + name.length
        if name.start < read or end > len(text):
            continue
        pieces.append(text[read : name.start])
        written += name.start - read
        piece = DELETED_USER if name.user_id == user_id else text[name.start : end]
        placed.append(NamedUser(name.user_id, written, len(piece)))
        pieces.append(piece)
        written += len(piece)
        read = end
    pieces.append(text[read:])
    return "".join(pieces), tuple(placed)
