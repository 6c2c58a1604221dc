"""What the two Socket.IO dialects share: the socket's state and payload checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from palaver.compat.bridge import DialectSocket
from palaver.core.errors import ErrorCode, PalaverError
from palaver.services.container import Services

SEED_002 = "002"
SEED_003 = "003"


class SioSocket(DialectSocket):
    """State of one Socket.IO socket."""

    __slots__ = ("dialect", "host", "receipts", "rooms", "sid")

    def __init__(self, sid: str, host: str = "") -> None:
        super().__init__()
        self.sid = sid
        # The Host the client connected to: its absolute upload URLs name this server.
        self.host = host.lower()
        # None until the first join says which seed the client speaks.
        self.dialect: str | None = None
        # Seed 002: rooms joined on this socket.
        self.rooms: set[int] = set()
        # Seed 003: the last receipt cursors told, per (conversation, user).
        self.receipts: dict[tuple[int, int], tuple[int, int]] = {}


Handler = Callable[[Services, SioSocket, Any], Awaitable[Any]]


def require_dict(data: Any, *fields: str) -> dict[str, Any]:
    """The event's payload as an object, or ``INVALID_FORMAT``."""
    if not isinstance(data, dict):
        raise PalaverError(
            ErrorCode.INVALID_FORMAT, f"payload must be an object with {', '.join(fields)}"
        )
    return data
