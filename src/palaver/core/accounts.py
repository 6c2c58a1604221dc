"""Account rules: password policy, username and e-mail shape. Pure functions."""

from __future__ import annotations

import re

from palaver.core import names
from palaver.core.errors import ErrorCode, PalaverError

USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{1,31}$")
# Deliberately loose: the only real check of an address is a mail that arrives.
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
MAX_PASSWORD = 1024  # argon2 is fine with long inputs, but unbounded ones are a DoS lever
#: What ``@name`` means besides a user: everyone in the conversation (``@room``).
ROOM_MENTIONS = frozenset({"room", "all", "channel", "everyone"})


def mention_name(written: str) -> str:
    """The username a written ``@name`` stands for: lower-cased, without the ``.`` or
    ``-`` that end a sentence or clause after it ("thanks @ada.")."""
    return written.rstrip(".-").lower()


def check_password(password: str, *, min_length: int, require_classes: bool) -> None:
    """Raise ``WEAK_PASSWORD`` (naming field ``password``) when the policy refuses it."""
    problems = []
    if len(password) < min_length:
        problems.append(f"at least {min_length} characters")
    if len(password) > MAX_PASSWORD:
        raise PalaverError(
            ErrorCode.WEAK_PASSWORD,
            f"password must be at most {MAX_PASSWORD} characters",
            field="password",
        )
    if require_classes:
        if not any(c.islower() for c in password):
            problems.append("a lower-case letter")
        if not any(c.isupper() for c in password):
            problems.append("an upper-case letter")
        if not any(c.isdigit() for c in password):
            problems.append("a digit")
    if problems:
        raise PalaverError(
            ErrorCode.WEAK_PASSWORD,
            "password needs " + ", ".join(problems),
            field="password",
        )


def normalise_username(username: str) -> str:
    """Check a username's shape, and that ``@username`` would mention it; raise
    ``VALIDATION_ERROR`` naming ``username``."""
    username = username.strip()
    if not USERNAME_RE.match(username):
        raise PalaverError(
            ErrorCode.VALIDATION_ERROR,
            "username must be 2-32 characters: letters, digits, '_', '.', '-', "
            "starting with a letter or digit",
            field="username",
        )
    mentioned = mention_name(username)
    if mentioned in ROOM_MENTIONS:
        raise PalaverError(
            ErrorCode.VALIDATION_ERROR,
            f"username {username} is reserved: @{mentioned} mentions everyone in a conversation",
            field="username",
        )
    if mentioned != username.lower():
        raise PalaverError(
            ErrorCode.VALIDATION_ERROR,
            "username must not end with '.' or '-': @name. reads as the end of a sentence, "
            "so nobody could mention it",
            field="username",
        )
    return username


def normalise_email(email: str) -> str:
    """Check an e-mail's shape and lower-case it; raise naming ``email``."""
    email = email.strip().lower()
    if len(email) > 254 or not EMAIL_RE.match(email):
        raise PalaverError(ErrorCode.VALIDATION_ERROR, "email is not valid", field="email")
    return email


def normalise_display_name(name: str | None, fallback: str) -> str:
    """A display name, stripped, at most 64 characters; ``VALIDATION_ERROR`` naming
    ``display_name`` when it holds a control character (:func:`names.check_name`)."""
    cleaned = names.check_name((name or "").strip(), "display_name")
    if len(cleaned) > 64:
        raise PalaverError(
            ErrorCode.VALIDATION_ERROR,
            "display_name must be at most 64 characters",
            field="display_name",
        )
    return cleaned or fallback
