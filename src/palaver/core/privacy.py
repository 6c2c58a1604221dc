"""What one user may learn about another."""

from __future__ import annotations

from palaver.core.models import User


def sender_address(sender: User | None, viewer_id: int, *, expose_emails: bool) -> str | None:
    """The ``senderEmail`` of seed 002's message shape, as ``viewer_id`` may see it.

    E-mail addresses are private: the native API never shows another user's, and a
    public room would otherwise hand every poster's address to anyone who joins it.
    Others see the username (or the part of the address before the @) unless the
    server opts in with ``expose_emails``; the sender sees their own address.
    """
    if sender is None:
        return None
    if expose_emails or sender.id == viewer_id:
        return sender.email or sender.username
    return sender.username or (sender.email or "").split("@")[0] or None
